from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from scoot.cli import demo_study_path
from scoot.domain import Objective, ParamKind
from scoot.study import StudyError, StudySpec, load_study

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", [*EXAMPLES, demo_study_path()], ids=lambda p: p.name)
def test_shipped_studies_load(path: Path) -> None:
    spec = load_study(path)
    assert spec.params
    assert spec.defaults is not None, "the engine default is the baseline: every param needs one"


def test_examples_cover_every_objective_kind() -> None:
    kinds = {tuple(sorted(o.value for o in load_study(p).objectives)) for p in EXAMPLES}
    assert {("throughput",), ("p95_latency",), ("tpot", "ttft")} <= kinds  # the paper's three
    assert {o.value for k in kinds for o in map(Objective, k)} == {o.value for o in Objective}
    assert any(load_study(p).slo for p in EXAMPLES)  # and outcome constraints


def test_valid_study_fields(make_study: Callable[..., Path]) -> None:
    spec = load_study(make_study(budget=7))
    assert spec.budget == 7
    assert spec.objectives == (Objective.P95_LATENCY,)
    assert [p.kind for p in spec.params] == [ParamKind.INT, ParamKind.INT, ParamKind.BOOL]
    assert spec.params[0].log
    assert spec.defaults == {
        "max_num_seqs": 256,
        "max_num_batched_tokens": 2048,
        "enable_prefix_caching": True,
    }


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("\n[params.x]\ntype = 'int'\nlow = 5\nhigh = 5\n", "params.x.high", "greater than low"),
        ("\n[params.x]\ntype = 'int'\nlow = 0\nhigh = 5\nlog = true\n", "params.x.low", "> 0"),
        ("\n[params.x]\ntype = 'float'\nlow = 'a'\nhigh = 5\n", "params.x.low", "expected float"),
        ("\n[params.x]\ntype = 'enum'\nchoices = [1]\n", "params.x.choices", "two choices"),
        (
            "\n[params.x]\ntype = 'int'\nlow = 1\nhigh = 5\ndefault = 9\n",
            "params.x.default",
            "outside",
        ),
        ("\n[params.x]\ntype = 'integer'\n", "params.x.type", "expected one of"),
        ("\n[params.x]\ntype = 'bool'\nrange = 3\n", "params.x.range", "unknown key"),
    ],
)
def test_bad_params_name_the_key(
    make_study: Callable[..., Path], extra: str, key: str, words: str
) -> None:
    path = make_study(extra=extra)
    # A command engine has no catalog: the generic checks of a parameter table.
    path.write_text(
        path.read_text().replace('kind = "embedded"', 'kind = "command"\ncommand = ["x"]')
    )
    with pytest.raises(StudyError) as info:
        load_study(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: key '{key}'")
    assert words in msg


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("budget = 4", "budget = 0", "budget"),
        ("budget = 4", "budget = 'x'", "budget"),
        ("rate = 8.0", "rate = -1", "trace.rate"),
        ('kind = "embedded"', 'kind = "tgi"', "engine.kind"),
        ('objectives = ["p95_latency"]', 'objectives = ["ttft", "ttft"]', "objectives"),
        ('objectives = ["p95_latency"]', 'objectives = ["ttft", "tpot", "goodput"]', "objectives"),
        ('objectives = ["p95_latency"]', 'objectives = ["goodput"]', "objectives"),
        ('objectives = ["p95_latency"]', 'objectives = ["capacity"]', "objectives"),
        ('objectives = ["p95_latency"]', 'objectives = ["cost_per_mtok"]', "objectives"),
        ("seed = 1", 'seed = 1\nslo = ["p95_ttf_ms <= 5"]', "slo[0]"),
        ("seed = 1", 'seed = 1\nslo = ["p95_ttft_ms < 5"]', "slo[0]"),
        ("seed = 1", "seed = 1\nslo = [5]", "slo[0]"),
        ("seed = 1", "seed = 1\ncost = { gpu_hour_usd = -2 }", "cost.gpu_hour_usd"),
        ("seed = 1", "seed = 1\ncapacity = { target = 1.5 }", "capacity.target"),
        ('objectives = ["p95_latency"]', 'objectives = ["speed"]', "objectives[0]"),
        ("seed = 1", "seed = 1\ncolour = 'red'", "colour"),
        ('"max_num_batched_tokens >= max_num_seqs"', '"max_tokens >= 1"', "constraints[0]"),
        ('"max_num_batched_tokens >= max_num_seqs"', '"__import__(1)"', "constraints[0]"),
        # Values that once passed and then crashed or corrupted a study (issue 14, item 5).
        ("duration_s = 1.5", "duration_s = inf", "trace.duration_s"),
        ("duration_s = 1.5", "duration_s = nan", "trace.duration_s"),
        ("rate = 8.0", "rate = 8.0\nheaviest = nan", "trace.heaviest"),
        ("rate = 8.0", "rate = 8.0\nburstiness = nan", "trace.burstiness"),
        ("startup_timeout_s = 30", "startup_timeout_s = inf", "engine.startup_timeout_s"),
        ("request_timeout_s = 10", "request_timeout_s = nan", "stress.request_timeout_s"),
        ("high = 256", "high = inf", "params.max_num_seqs.high"),
        ("low = 4", "low = -5", "params.max_num_seqs.low"),
        ('gpu_sets = ["0"]', "gpu_sets = []", "gpu_sets"),
        ("seed = 1", "seed = -1", "seed"),
        ("rate = 8.0", "rate = 8.0\nseed = -3", "trace.seed"),
        (
            'SCOOT_ENGINE_STARTUP_S = "',
            '"A=B" = "1", SCOOT_ENGINE_STARTUP_S = "',
            "engine.env.A=B",
        ),
        (
            '"max_num_batched_tokens >= max_num_seqs"',
            '"max_num_batched_tokens / (max_num_seqs - 256) > 1"',
            "constraints[0]",
        ),
        ('name = "t"', 'name = "x[/]"', "name"),
        ('name = "t"', 'name = "../up"', "name"),
        ('name = "t"', 'name = "a/b"', "name"),
    ],
)
def test_bad_values_name_file_and_key(
    make_study: Callable[..., Path], old: str, new: str, key: str
) -> None:
    path = make_study()
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(StudyError, match="^" + re.escape(f"{path}: key '{key}") + r"(\.|')"):
        load_study(path)


def test_missing_trace_file(make_study: Callable[..., Path], tmp_path: Path) -> None:
    path = make_study()
    path.write_text(path.read_text().replace(str(tmp_path / "tiny.jsonl"), "nope.jsonl"))
    with pytest.raises(StudyError, match=r"key 'trace\.file': no such trace file"):
        load_study(path)


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("name = \n")
    with pytest.raises(StudyError, match=rf"^{path}: not valid TOML"):
        load_study(path)


def test_defaults_must_satisfy_constraints(make_study: Callable[..., Path]) -> None:
    path = make_study()
    text = path.read_text().replace(
        '"max_num_batched_tokens >= max_num_seqs"', '"max_num_seqs < 100"'
    )
    path.write_text(text)
    with pytest.raises(StudyError, match="defaults violate"):
        load_study(path)


@pytest.mark.parametrize("path", [*EXAMPLES, demo_study_path()], ids=lambda p: p.name)
def test_spec_round_trips_through_the_store_json(path: Path) -> None:
    """Workers rebuild the spec from the store; it must be the very spec the file gave."""
    from scoot.study import StudySpec

    spec = load_study(path)
    again = StudySpec.from_json(spec.to_json(), spec.source)
    assert again == spec
    assert again.to_json() == spec.to_json()


def test_robustness_runs_must_not_be_negative(make_study: Callable[..., Path]) -> None:
    path = make_study(robust=-1)
    with pytest.raises(StudyError, match=r"key 'stress\.robustness_runs': must be >= 0"):
        load_study(path)
    assert load_study(make_study(name="r2", robust=2)).stress.robustness_runs == 2


def _catalog_study(make_study: Callable[..., Path], params: str, engine: str = "") -> Path:
    path = make_study()
    text = path.read_text()
    head = text[: text.index("[params.")]
    # The catalog brings its own constraints; the template's would name untuned flags.
    head = "\n".join(line for line in head.splitlines() if not line.startswith("constraints"))
    head += "\n"
    if engine:
        head = head.replace('kind = "embedded"', engine)
    path.write_text(head + params)
    return path


@pytest.mark.parametrize(
    ("params", "key", "words"),
    [
        ("[params.max_num_seq]\n", "params.max_num_seq", "did you mean max_num_seqs"),
        ("[params.kv_cache_dtype]\n", "params.kv_cache_dtype", "no tunable flag"),
        ("[params.async_scheduling]\n", "params.async_scheduling", "does not emulate"),
        (
            "[params.max_num_seqs]\ntype = 'float'\nlow = 1.0\nhigh = 9.0\n",
            "params.max_num_seqs.type",
            "as int",
        ),
        ("[params.block_size]\nchoices = [16, 24]\n", "params.block_size.choices", "24 violates"),
        ("[params.block_size]\nlow = 0\nhigh = 64\n", "params.block_size.low", "positive"),
    ],
)
def test_flags_are_checked_against_the_engine_catalog(
    make_study: Callable[..., Path], params: str, key: str, words: str
) -> None:
    path = _catalog_study(make_study, params)
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert str(info.value).startswith(f"{path}: key '{key}'"), str(info.value)
    assert words in str(info.value)


def test_the_catalog_fills_what_a_study_leaves_out(make_study: Callable[..., Path]) -> None:
    """`[params.max_num_seqs]` alone: vLLM 0.32's type and range, the embedded engine's own
    default for the GPU (1024 on an H100), and the catalog's constraints."""
    spec = load_study(
        _catalog_study(make_study, "[params.max_num_seqs]\n[params.max_num_batched_tokens]\n")
    )
    seqs, tokens = spec.params
    assert (seqs.kind, seqs.low, seqs.high, seqs.log, seqs.default) == (
        ParamKind.INT, 1, 2048, True, 1024,
    )  # fmt: skip
    assert tokens.default == 8192
    exprs = {c.expr for c in spec.constraints}
    assert "max_num_batched_tokens >= max_num_seqs" in exprs
    assert spec.engine.catalog == "vllm-0.32"


def test_real_vllm_needs_the_default_it_picks_at_start_up(make_study: Callable[..., Path]) -> None:
    path = _catalog_study(make_study, "[params.max_num_seqs]\n", 'kind = "vllm"')
    with pytest.raises(StudyError, match=r"key 'params.max_num_seqs.default': vllm picks"):
        load_study(path)
    ok = _catalog_study(make_study, "[params.max_num_seqs]\ndefault = 256\n", 'kind = "vllm"')
    assert load_study(ok).params[0].default == 256


def test_the_vllm_cpu_profile_brings_its_flags_env_and_constraints(
    make_study: Callable[..., Path],
) -> None:
    path = _catalog_study(
        make_study,
        "[params.block_size]\nchoices = [32, 64, 96, 128]\n",
        'kind = "vllm"\nprofile = "vllm-cpu"',
    )
    spec = load_study(path)
    assert spec.engine.args[:2] == ("--dtype", "float32")
    assert dict(spec.engine.env)["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert any(c.expr == "block_size % 32 == 0" for c in spec.constraints)
    # vLLM's parser takes any int: 96 is a block size; 16 is not one on CPU.
    assert spec.params[0].choices == (32, 64, 96, 128) and spec.params[0].default == 128
    refused = _catalog_study(
        make_study,
        "[params.block_size]\nchoices = [16, 32]\ndefault = 32\n",
        'kind = "vllm"\nprofile = "vllm-cpu"',
    )
    with pytest.raises(StudyError, match="16 violates 'block_size % 32 == 0'"):
        load_study(refused)


def test_constraints_read_the_profiles_defaults_for_untuned_flags(
    make_study: Callable[..., Path],
) -> None:
    """vLLM-CPU takes 128 sequences when max_num_seqs is not tuned: 256 active ones cannot be."""
    cpu = 'kind = "vllm"\nprofile = "vllm-cpu"'
    path = _catalog_study(make_study, "[params.max_num_active_seqs]\ndefault = 256\n", cpu)
    with pytest.raises(StudyError, match="max_num_active_seqs <= max_num_seqs"):
        load_study(path)
    ok = _catalog_study(make_study, "[params.max_num_batched_tokens]\nlow = 16\n", cpu)
    space = load_study(ok).space()
    from scoot.domain import Config

    assert space.default() == Config.of({"max_num_batched_tokens": 2048})
    assert not space.allowed(Config.of({"max_num_batched_tokens": 64}))  # < 128 sequences


def test_a_flag_the_profile_says_does_nothing_is_warned_of(
    make_study: Callable[..., Path],
) -> None:
    from scoot.study import warnings_of

    cpu = 'kind = "vllm"\nprofile = "vllm-cpu"'
    path = _catalog_study(make_study, "[params.stream_interval]\ndefault = 1\n", cpu)
    (warning,) = warnings_of(load_study(path))
    assert "stream_interval" in warning and "no measurable effect" in warning


def test_a_study_binding_beyond_loopback_is_warned_of(make_study: Callable[..., Path]) -> None:
    from scoot.study import warnings_of

    assert warnings_of(load_study(make_study())) == []
    path = make_study(name="open")
    path.write_text(
        path.read_text().replace('"--max-model-len"', '"--host", "0.0.0.0", "--max-model-len"')
    )
    (warning,) = warnings_of(load_study(path))
    assert "--host 0.0.0.0" in warning and str(path) in warning


def test_the_cpu_profile_sets_a_workable_lateness_limit(make_study: Callable[..., Path]) -> None:
    cpu = 'kind = "vllm"\nprofile = "vllm-cpu"'
    path = _catalog_study(make_study, "[params.max_num_seqs]\ndefault = 128\n", cpu)
    text = re.sub(r"max_lateness_ms = [0-9.]+", "", path.read_text())
    path.write_text(text)
    assert load_study(path).stress.max_lateness_ms == 500.0
    path.write_text(text.replace("[stress]", "[stress]\nmax_lateness_ms = 80"))
    assert load_study(path).stress.max_lateness_ms == 80.0  # the study's own word wins


def test_a_study_on_a_profiled_twin(make_study: Callable[..., Path], tmp_path: Path) -> None:
    """`[engine] table`: the same study as on vLLM-CPU (its profile's constraints, defaults and
    stress limits), served by the embedded engine as the profiled engine's twin."""
    from helpers import TWIN_MODEL, profiled_table

    table = profiled_table(tmp_path)
    engine = f'kind = "embedded"\nprofile = "vllm-cpu"\ntable = "{Path(table).name}"'

    def study(engine: str) -> Path:
        params = "[params.max_num_seqs]\nlow = 4\nhigh = 256\n[params.block_size]\n"
        path = _catalog_study(make_study, params + "choices = [32, 64, 128]\n", engine)
        text = path.read_text().replace('model = "llama-3.1-8b"', f'model = "{TWIN_MODEL}"')
        path.write_text(text.replace('args = ["--max-model-len", "4096"]\n', ""))
        return path

    spec = load_study(study(engine))
    assert spec.engine.table == table  # relative to the study file
    # The profile's launch flags are for the real engine; the twin gets its table.
    assert spec.engine.args == ("--table", table)
    assert "VLLM_CPU_KVCACHE_SPACE" not in dict(spec.engine.env)
    assert any(c.expr == "block_size % 32 == 0" for c in spec.constraints)
    # What the profiled engine picks.
    assert [p.default for p in spec.params] == [128, 128]
    assert "table" in spec.to_json()
    with pytest.raises(StudyError, match=r"key 'engine.table': .*kind = \"embedded\""):
        load_study(study(engine.replace('kind = "embedded"', 'kind = "vllm"')))
    with pytest.raises(StudyError, match=r"key 'engine.table': .*cannot read"):
        load_study(study(engine.replace(Path(table).name, "missing.json")))
    other = study(engine).read_text().replace(TWIN_MODEL, "llama-3.1-8b")
    (tmp_path / "other.toml").write_text(other)
    with pytest.raises(StudyError, match=r"key 'engine.model': 'llama-3.1-8b' is not in"):
        load_study(tmp_path / "other.toml")


def test_outcome_constraints_and_new_objectives_parse_and_round_trip(
    make_study: Callable[..., Path],
) -> None:
    from scoot.domain import Objective, OutcomeConstraint

    path = make_study()
    text = path.read_text().replace(
        'objectives = ["p95_latency"]',
        'objectives = ["capacity", "cost_per_mtok"]\n'
        'slo = ["p95_ttft_ms <= 500", "mean_tpot_ms<=50"]',
    )
    text += "\n[cost]\ngpu_hour_usd = 2.5\n[capacity]\ntarget = 0.95\nmax_steps = 4\n"
    if "goodput" not in text:
        text = text.replace("[stress]", "[stress]\ngoodput = { ttft_ms = 500 }", 1)
    path.write_text(text)
    spec = load_study(path)
    assert spec.objectives == (Objective.CAPACITY, Objective.COST_PER_MTOK)
    assert spec.slo == (
        OutcomeConstraint("p95_ttft_ms", "<=", 500.0),
        OutcomeConstraint("mean_tpot_ms", "<=", 50.0),
    )
    assert (spec.gpu_hour_usd, spec.capacity_target, spec.capacity_max_steps) == (2.5, 0.95, 4)
    assert StudySpec.from_json(spec.to_json()) == dataclasses.replace(spec, source="")
    # An unknown metric names its closest matches and where it starts.
    path.write_text(text.replace("p95_ttft_ms <= 500", "p95_tfft_ms <= 500"))
    with pytest.raises(
        StudyError, match=r"key 'slo\[0\]'.*at character 1; did you mean p95_ttft_ms"
    ):
        load_study(path)


def test_early_stop_is_off_unless_asked_and_its_confidence_is_checked(
    make_study: Callable[..., Path],
) -> None:
    path = make_study()
    assert load_study(path).stress.early_stop is False
    text = path.read_text()
    path.write_text(text.replace("[stress]\n", "[stress]\nearly_stop = true\n"))
    spec = load_study(path)
    assert spec.stress.early_stop is True and spec.stress.early_stop_confidence == 0.95
    path.write_text(text.replace("[stress]\n", "[stress]\nearly_stop_confidence = 1.5\n"))
    with pytest.raises(StudyError, match=r"key 'stress\.early_stop_confidence': must be within"):
        load_study(path)
    # A short test first is one of early stopping's rules: off, and only with it.
    assert load_study(make_study(name="plain")).stress.short_first == 0.0
    path.write_text(text.replace("[stress]\n", "[stress]\nshort_first = 0.5\n"))
    with pytest.raises(StudyError, match=r"key 'stress\.short_first': needs early_stop = true"):
        load_study(path)
    path.write_text(text.replace("[stress]\n", "[stress]\nearly_stop = true\nshort_first = 1\n"))
    with pytest.raises(StudyError, match=r"key 'stress\.short_first': must be within \[0, 1\)"):
        load_study(path)
    path.write_text(text.replace("[stress]\n", "[stress]\nearly_stop = true\nshort_first = 0.5\n"))
    assert load_study(path).stress.short_first == 0.5


def test_variant_selects_the_batch_rule_and_older_studies_stay_the_same(
    make_study: Callable[..., Path],
) -> None:
    import json

    from scoot.jobs.suggest import default_suggester
    from scoot.study import StudySpec

    path = make_study(name="v", objectives=("ttft", "tpot"))
    spec = load_study(path)
    assert spec.variant == "default"
    default = default_suggester(spec, spec.space())
    assert default.batch == "believer"  # type: ignore[attr-defined]
    assert default.feasibility == "staged"  # type: ignore[attr-defined]
    assert default.fill == "model"  # type: ignore[attr-defined]
    # A study recorded before `variant` and `early_stop` existed is the same study.
    stored = json.loads(spec.to_json())
    assert "variant" not in stored and "early_stop" not in stored["stress"]
    assert StudySpec.from_json(spec.to_json(), spec.source) == spec
    text = path.read_text()
    path.write_text(text.replace("seed = 1\n", 'seed = 1\nvariant = "paper"\n', 1))
    paper = load_study(path)
    as_paper = default_suggester(paper, paper.space())
    assert as_paper.batch == "topk"  # type: ignore[attr-defined]
    assert as_paper.feasibility == "paper"  # type: ignore[attr-defined]
    assert as_paper.fill == "paper"  # type: ignore[attr-defined]
    path.write_text(text.replace("seed = 1\n", 'seed = 1\nvariant = "fancy"\n', 1))
    with pytest.raises(StudyError, match=r"key 'variant': 'fancy': expected one of default, pa"):
        load_study(path)
