"""Run launch_scripts/train.py with rank 0 starting 3 s after the others (so the others refuse bad
arguments first): what a loaded node can do to the order in which torchrun's workers parse."""
import os
import runpy
import sys
import time

TRAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch_scripts", "train.py")

if __name__ == "__main__":
    if os.environ.get("RANK") == "0":
        time.sleep(3)
    sys.argv = [TRAIN, *sys.argv[1:]]
    runpy.run_path(TRAIN, run_name="__main__")
