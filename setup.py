from setuptools import find_packages, setup

setup(
    name="colossal_sched",
    version="0.1.0",
    description="ColossalAI's learning-rate schedulers as exact closed-form functions of the step, "
    "with rank-0 lr broadcast and scheduler state in sharded checkpoints",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["colossal_sched", "colossal_sched.*", "hooks", "hooks.*"]),
    install_requires=["torch>=2.2", "numpy", "pyyaml"],  # pyyaml: colossal-sched show CONFIG.yaml
    extras_require={
        # colossalai 0.5.0 pins torch<=2.5.1: install it with --no-deps (see README / .ci/run)
        "colossalai": ["colossalai==0.5.0"],
        "adapters": ["transformers==4.51.3", "lightning==2.6.6"],
        "tensorboard": ["tensorboard==2.21.0"],
        "plot": ["matplotlib"],
        "test": ["pytest>=7", "pytest-timeout", "pytest-xdist", "hypothesis", "pyyaml", "matplotlib", "pillow", "psutil",
                 "transformers==4.51.3", "lightning==2.6.6", "tensorboard==2.21.0"],
    },
    entry_points={"console_scripts": ["colossal-sched=colossal_sched.cli:main"]},
)
