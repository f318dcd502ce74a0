"""The step-level simulated LLM, the paper presets and measured profiles in the simulator.

Latencies are virtual (deterministic event times), so comparing them is not a timed
assertion.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

from primflow.cli import main
from primflow.engines.base import EngineRequest
from primflow.engines.profile import LatencyProfile, save_profiles
from primflow.graph.ir import Op
from primflow.sim.engines import build_engines
from primflow.sim.profiles import PROFILE_PRESETS, preset
from primflow.sim.simulator import SimConfig, simulate
from primflow.sim.step_llm import StepSimLLM, _Work, plan_step
from primflow.sim.workload import app_workload
from primflow.testing.clock import run_virtual

# A GPU-like step (weights read once per step) and a CPU-like one (every token costs).
MEMORY_BOUND = LatencyProfile(
    base_s=0.0, step_base_s=0.02, step_per_seq_s=0.0, step_per_token_s=0.0001
)
COMPUTE_BOUND = LatencyProfile(
    base_s=0.0, step_base_s=0.001, step_per_seq_s=0.0, step_per_token_s=0.01
)


def _decode(query_id: str, max_tokens: int) -> EngineRequest:
    return EngineRequest(
        query_id=query_id,
        node="answer",
        op=Op.LLM_DECODE,
        inputs={},
        params={"max_tokens": max_tokens},
        llm_request_id=f"{query_id}/answer",
    )


def _prefill(query_id: str, num_tokens: int) -> EngineRequest:
    return EngineRequest(
        query_id=query_id,
        node="prompt",
        op=Op.LLM_PREFILL,
        inputs={"q": "x"},
        params={"template": "{q}"},
        num_tokens=num_tokens,
        llm_request_id=f"{query_id}/prompt",
    )


def _finish_times(profile: LatencyProfile, requests: list[EngineRequest]) -> list[float]:
    async def main() -> list[float]:
        llm = StepSimLLM("llm", profile, max_num_calls=8)
        loop = asyncio.get_running_loop()
        done: list[float] = []

        async def one(request: EngineRequest) -> None:
            await llm.submit([request])[0]
            done.append(loop.time())

        async with asyncio.TaskGroup() as tg:
            for request in requests:
                tg.create_task(one(request))
        await llm.close()
        return done

    return run_virtual(main())


def test_concurrent_decodes_share_steps_as_the_step_costs_say() -> None:
    one = _finish_times(MEMORY_BOUND, [_decode("a", 10)])
    four = _finish_times(MEMORY_BOUND, [_decode(q, 10) for q in "abcd"])
    assert one == [pytest.approx(10 * MEMORY_BOUND.step_s(1, 1))]
    # Memory-bound: four decodes in one batch take 10 steps of 4 tokens each.
    assert four == [pytest.approx(10 * MEMORY_BOUND.step_s(4, 4))] * 4
    assert four[0] < 1.1 * one[0]
    # Compute-bound: batching saves only the fixed step cost.
    alone = _finish_times(COMPUTE_BOUND, [_decode("a", 10)])[0]
    together = _finish_times(COMPUTE_BOUND, [_decode(q, 10) for q in "abcd"])[0]
    assert together == pytest.approx(10 * COMPUTE_BOUND.step_s(4, 4))
    assert together > 3.5 * alone


def test_prefills_are_chunked_by_the_token_budget_after_decode_tokens() -> None:
    profile = MEMORY_BOUND.with_changes(max_batch_tokens=100)
    finished = _finish_times(profile, [_prefill("a", 250)])
    assert finished == [pytest.approx(2 * profile.step_s(1, 100) + profile.step_s(1, 50))]
    loop_works = [
        _Work(0, 5, asyncio.Future(loop=asyncio.new_event_loop())),
        _Work(300, 0, asyncio.Future(loop=asyncio.new_event_loop())),
    ]
    step = plan_step(loop_works, max_num_seqs=8, max_num_tokens=100)
    assert step.tokens_by_work == {0: 1, 1: 99} and step.num_seqs == 2


def test_a_profile_without_step_costs_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"engine 'llm'.*no step costs"):
        StepSimLLM("llm", LatencyProfile())
    with pytest.raises(ValueError, match="'steps': engine 'llm' has no step costs"):
        from primflow.engines.base import EngineKind

        build_engines({"llm": EngineKind.LLM}, {"llm": LatencyProfile()}, llm_model="steps")


def test_steps_model_runs_apps_and_batching_pays_on_gpus_only() -> None:
    config = SimConfig(rate_qps=2.0, duration_s=10.0, seed=1, llm_model="steps")
    workload = app_workload("advanced_rag", "primflow", preset("gpu"))
    result = simulate(workload, config)
    assert result.stats.num_completed == result.stats.num_queries > 0
    # Under load on the GPU preset the steps model batches decodes nearly for free,
    # the calls model slows each call by 2 % per other call.
    calls = simulate(workload, dataclasses.replace(config, llm_model="calls"))
    assert result.stats.mean_s < calls.stats.mean_s


def test_paper_presets_order_the_llms_and_keep_the_judge_7b() -> None:
    for name in ("paper-7b", "paper-13b", "paper-30b", "paper-gemma-2b"):
        profiles = PROFILE_PRESETS[name]
        assert profiles["judge"] == PROFILE_PRESETS["paper-7b"]["llm"]
        assert profiles["llm"].step_base_s > 0
    gemma, llama13 = preset("paper-gemma-2b")["llm"], preset("paper-13b")["llm"]
    assert gemma.per_output_token_s < llama13.per_output_token_s
    workload = app_workload("search_augmented", "primflow", preset("paper-30b"))
    assert workload.profiles(preset("paper-30b"))["judge"].step_base_s == pytest.approx(0.022)


def test_measured_profiles_replace_the_preset_ones(tmp_path: Path) -> None:
    slow_embedder = preset("cpu")["embedder"].with_changes(per_item_s=0.5)
    config = SimConfig(rate_qps=0.5, duration_s=6.0, hardware="cpu", seed=2)
    workload = app_workload("naive_rag", "primflow", preset("cpu"))
    base = simulate(workload, config)
    slowed = simulate(workload, dataclasses.replace(config, profiles={"embedder": slow_embedder}))
    assert slowed.stats.mean_s > base.stats.mean_s + 1.0
    assert slowed.to_dict()["config"]["profiles"]["embedder"]["per_item_s"] == 0.5
    # The same through the CLI, from a file `primflow profile` writes.
    path = tmp_path / "profiles.json"
    save_profiles({"embedder": slow_embedder}, path)
    argv = ["simulate", "naive_rag", "--hardware", "cpu", "--rate", "0.5", "--duration", "6"]
    argv += ["--seed", "2", "--json"]
    assert main([*argv, "--profiles", str(path)]) == 0


def test_cli_profiles_file_changes_the_latency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profiles.json"
    save_profiles({"llm": preset("gpu")["llm"].with_changes(per_output_token_s=0.1)}, path)
    argv = ["simulate", "search_augmented", "--rate", "0.5", "--duration", "6", "--json"]
    assert main(argv) == 0
    base = json.loads(capsys.readouterr().out)["results"][0]["stats"]["mean_s"]
    assert main([*argv, "--profiles", str(path)]) == 0
    slowed = json.loads(capsys.readouterr().out)["results"][0]["stats"]["mean_s"]
    assert slowed > 2 * base


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--profiles", "missing.json"], "--profiles: no such file"),
        (["--llm-model", "magic"], "unknown LLM model 'magic'"),
        (["--baselines", "chains"], "unknown baselines mode 'chains'"),
        (["--max-tokens", "0"], "--max-tokens must be >= 1"),
    ],
)
def test_cli_bad_new_options_exit_2_naming_them(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "naive_rag", "--duration", "2", *extra]) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_a_profiles_file_that_is_not_profiles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text("[1, 2]")
    assert main(["simulate", "naive_rag", "--duration", "2", "--profiles", str(path)]) == 2
    assert "bad.json" in capsys.readouterr().err


def test_explicit_queries_cycle_by_index_with_the_given_documents_and_changes() -> None:
    import numpy as np

    questions = ["What is HNSW?", "What is BM25?"]
    workload = app_workload(
        "naive_rag",
        "sequential",
        preset("cpu"),
        baselines="modules",
        questions=questions,
        documents=["HNSW is a graph index.", "BM25 ranks by term frequency."],
        config_changes={"max_tokens": 7},
    )
    rng = np.random.default_rng(0)
    made = [workload.make_query(i, rng) for i in range(3)]
    assert made[0] is made[2] and made[0] is not made[1]
    decodes = [n for n in made[0].graph if n.op is Op.LLM_DECODE]
    assert decodes and all(n.params["max_tokens"] == 7 for n in decodes)
    assert workload.info["baselines"] == "modules"
    with pytest.raises(ValueError, match="at least one question"):
        app_workload("naive_rag", "primflow", preset("cpu"), questions=[])


def test_fixed_decisions_take_the_branch_a_real_run_took() -> None:
    workload = app_workload("search_augmented", "primflow", preset("gpu"))
    config = SimConfig(rate_qps=0.5, duration_s=10.0, seed=1)
    searched = simulate(
        workload, dataclasses.replace(config, llm_decisions={"judge.decode": "yes"})
    )
    skipped = simulate(workload, dataclasses.replace(config, llm_decisions={"judge.decode": "no"}))
    assert searched.engines["web_search"]["num_requests"] == searched.stats.num_queries > 0
    assert skipped.engines["web_search"]["num_requests"] == 0
    assert searched.stats.mean_s > skipped.stats.mean_s
    assert searched.to_dict()["config"]["llm_decisions"] == {"judge.decode": "yes"}
