"""Issue #3: the hook's lr broadcast on real gloo worlds of 2, 4 (dp2 x tp2) and 8 (dp2 x pp2 x tp2) ranks."""
import pytest

from distributed import run
import workers

pytestmark = [pytest.mark.multiprocess]


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "world,shape,name,kwargs",
    [
        (2, None, "CosineAnnealingWarmupLR", {"warmup_steps": 5}),
        (4, (2, 2), "OneCycleLR", {}),
        (8, (2, 2, 2), "MultiStepWarmupLR", {"warmup_steps": 3, "milestones": [6, 9]}),
    ],
    ids=["world2", "world4-dp2xtp2", "world8-dp2xpp2xtp2"],
)
def test_every_rank_holds_the_same_lr_at_every_step_with_one_collective_per_sync(tmp_path, world, shape, name, kwargs):
    results = run(world, workers.lr_agreement, shape, 12, 1, name, kwargs, tmp_path=tmp_path, timeout=200)
    first = results[0]["seen"]
    for r, res in enumerate(results):
        assert res["seen"] == first, f"rank {r} saw other lrs"
        assert [row[:2] for row in res["seen"]] == res["expected"]
        assert res["calls"] == ["all_to_all_single"] * res["syncs"], f"rank {r}: {res['calls']}"
        assert res["src"] == 0


@pytest.mark.timeout(120)
def test_sync_every_k_steps_broadcasts_only_on_those(tmp_path):
    results = run(2, workers.lr_agreement, None, 10, 3, "CosineAnnealingLR", {}, tmp_path=tmp_path)
    for res in results:
        assert res["calls"] == ["all_to_all_single"] * 4  # steps 0, 3, 6, 9
        assert [row[:2] for row in res["seen"]] == res["expected"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["fix", "warn", "raise"])
def test_a_perturbed_rank_is_fixed_warned_about_or_refused(tmp_path, mode):
    results = run(2, workers.perturbed, mode, tmp_path=tmp_path)
    src, other = results
    assert src["divergences"] == 0
    assert other["divergences"] == 1
    if mode == "raise":  # the verdict is collective: both ranks raise the same error in the same sync
        assert src["error"] == other["error"]
        assert "rank 1" in other["error"] and "relative difference" in other["error"]
        assert other["lrs"] != src["lrs"]
    else:
        assert other["lrs"] == src["lrs"]
        assert bool(other["warnings"]) == (mode == "warn")
        if mode == "warn":
            assert "rank 1" in other["warnings"][0] and "1e-06" in other["warnings"][0]


@pytest.mark.timeout(120)
def test_layout_mismatch_across_stages_errors_on_every_rank_without_hanging(tmp_path):
    results = run(2, workers.layout, [[None, None], [None, None, None]], tmp_path=tmp_path, timeout=60)
    for res in results:
        assert res["type"] == "LayoutMismatchError"
        assert "rank 1" in res["error"] and "source rank 0" in res["error"]
        assert "['#0', '#1']" in res["error"] and "['#0', '#1', '#2']" in res["error"]
        assert res["seconds"] < 30


@pytest.mark.timeout(120)
def test_named_groups_of_a_stage_holding_a_subset_are_matched_by_name(tmp_path):
    results = run(2, workers.layout, [["embed", "decay", "no_decay"], ["no_decay", "decay"]], tmp_path=tmp_path)
    assert results[0]["error"] is None and results[1]["error"] is None
    lr0 = dict(zip(["embed", "decay", "no_decay"], results[0]["lrs"]))
    assert results[1]["lrs"] == [lr0["no_decay"], lr0["decay"]]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("victim", [1, 0], ids=["receiver-dies", "source-dies"])
def test_a_killed_peer_gives_an_error_within_the_timeout(tmp_path, victim):
    results = run(2, workers.killed_peer, victim, 5.0, tmp_path=tmp_path, timeout=90, allow_errors=True)
    survivor = results[1 - victim]["ok"]
    assert survivor["error"] is not None, "the survivor kept training with a dead peer"
    assert survivor["seconds"] < 5.0 + 10


@pytest.mark.timeout(180)
def test_sync_over_colossalai_process_group_mesh_and_plugin_groups(tmp_path):
    results = run(4, workers.colossalai_groups, tmp_path=tmp_path, timeout=150)
    for label in ("ProcessGroupMesh", "plugin"):
        for res in results:
            assert res[label]["ranks"] == [0, 1, 2, 3] and res[label]["src"] == 0
            assert res[label]["lrs"] == results[0][label]["lrs"]  # rank 0's lrs everywhere


@pytest.mark.timeout(120)
def test_hooks_closed_and_rebuilt_on_the_same_ranks_keep_syncing(tmp_path):
    """A closed hook's side group lives until exit: a new hook of the same ranks gets a group of the same
    name, which failed (connection refused, or a hang) when the closed one was destroyed at once."""
    results = run(2, workers.closed_and_rebuilt, 12, tmp_path=tmp_path, timeout=90, dist_timeout=30)
    assert results[0] == results[1] and len(results[0]) == 12
