"""Write benchmarks/RESULTS.md from the JSON files in benchmarks/results/.

Every figure in the report is read from those files; rerun `make bench` to refresh both.
"""

import json
from pathlib import Path

from benchmarks.common import RESULTS_DIR
from seqattn.backend import DEFAULT_BACKEND

REPORT = Path(__file__).resolve().parent / "RESULTS.md"
MIB = 2**20


def _table(headers, rows) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _machine(payload: dict) -> str:
    m = payload["machine"]
    versions = ", ".join(f"{k} {m[k]}" for k in ("python", "keras", "numpy", "torch", "tensorflow") if k in m)
    return f"{m['cpu_count']} CPU cores ({m['processor']}), backend {m['backend']}; {versions}"


def naive_bytes_gib(n: int, batch_heads: int = 32) -> float:
    """Score, exp and weight matrices of the naive path: 3 x (B H, n, n) fp32."""
    return 3 * batch_heads * n * n * 4 / 2**30


ATTENTION_TARGET, ATTENTION_STRETCH = 2.0, 1.5  # memory-efficient / fused time at n >= 1024
CAUSAL_SHARE_TARGET = 0.65  # causal / non-causal memory-efficient time at n >= 4096


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def attention_section(payload: dict) -> list[str]:
    rows_by_key = {(r["method"], r["n"], r["causal"]): r for r in payload["rows"]}
    peak = payload["matmul_peak_gflops"]
    load = [f"{payload[k][0]:.1f}" for k in ("load_average_start", "load_average_end") if k in payload]
    out = [
        "## Attention: naive vs memory-efficient vs fused",
        "",
        f"Machine: {_machine(payload)}; {_threads(payload['machine'])} for every method. The machine was "
        f"shared with other jobs (1-minute load average {' at the start, '.join(load)} at the end, on "
        f"{payload['machine']['cpu_count']} cores), so absolute times are noisy: the methods ran interleaved in one "
        "process and each time is the median over the rounds (wall clock; CPU time beside it), and the ratios "
        f"are the figures to read. Shape: batch {payload['shape']['batch']} x heads {payload['shape']['heads']}, "
        f"head dim {payload['shape']['head_dim']}, fp32, one forward pass. Measured fp32 matmul peak: "
        f"{peak:.0f} GFLOP/s. Memory-efficient chunks (query, key): {tuple(payload['chunks'])}. Memory is the "
        "growth of peak RSS during one pass, each case in a fresh process; above n = 16384 that pass is also "
        "the time.",
        "",
    ]
    rows = []
    for (method, n, causal), r in sorted(rows_by_key.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        fused = rows_by_key.get(("fused", n, causal))
        naive = rows_by_key.get(("naive", n, causal))
        rows.append([
            n, "yes" if causal else "no", method, f"{r['seconds']:.3f}", f"{r['cpu_seconds']:.3f}",
            r["rounds"] or 1, f"{r['gflops']:.1f}", f"{100 * r['gflops'] / peak:.0f}%",
            f"{r['seconds'] / fused['seconds']:.2f}x" if fused else "n/a",
            f"{r['cpu_seconds'] / fused['cpu_seconds']:.2f}x" if fused else "n/a",
            f"{r['peak_extra_bytes'] / MIB:.0f}",
            f"{r['peak_extra_bytes'] / max(naive['peak_extra_bytes'], 1):.3f}" if naive else "n/a",
        ])
    out += _table(["n", "causal", "method", "time (s)", "CPU (s)", "runs", "GFLOP/s", "of peak", "time vs fused",
                   "CPU vs fused", "peak extra MiB", "memory vs naive"], rows)
    if payload.get("skipped"):
        out += ["", "Not run:"]
        out += [f"- {s['method']}, n={s['n']}, causal={s['causal']}: {s['reason']}" for s in payload["skipped"]]
    out += ["", f"Targets (stretch {ATTENTION_STRETCH}x):"]
    for causal in (False, True):
        for n in sorted({r["n"] for r in payload["rows"] if r["n"] >= 1024}):
            fused, efficient = rows_by_key.get(("fused", n, causal)), rows_by_key.get(("memory_efficient", n, causal))
            if fused and efficient:
                ratio = efficient["seconds"] / fused["seconds"]
                out.append(f"- memory-efficient within {ATTENTION_TARGET}x of fused, n={n}, causal={causal}: "
                           f"{ratio:.2f}x, {_met(ratio <= ATTENTION_TARGET)} (stretch "
                           f"{_met(ratio <= ATTENTION_STRETCH)})")
    for n in sorted({r["n"] for r in payload["rows"] if r["n"] >= 4096}):
        causal, full = rows_by_key.get(("memory_efficient", n, True)), rows_by_key.get(("memory_efficient", n, False))
        if causal and full:
            share = causal["seconds"] / full["seconds"]
            out.append(f"- causal memory-efficient at most {CAUSAL_SHARE_TARGET} of its non-causal time, n={n}: "
                       f"{share:.2f}, {_met(share <= CAUSAL_SHARE_TARGET)}")
    naive, efficient = rows_by_key.get(("naive", 4096, False)), rows_by_key.get(("memory_efficient", 4096, False))
    if naive and efficient:
        share = efficient["peak_extra_bytes"] / naive["peak_extra_bytes"]
        out.append(f"- memory-efficient peak extra memory at most 1/8 of naive at n=4096: {share:.3f}, "
                   f"{_met(share <= 1 / 8)}")
    for r in (r for r in payload["rows"] if r["method"] == "memory_efficient" and r["n"] == 32768):
        out.append(f"- n=32768 runs with the memory-efficient path, causal={r['causal']} ({r['seconds']:.0f} s, "
                   f"+{r['peak_extra_bytes'] / MIB:.0f} MiB) where the naive path would need "
                   f"~{naive_bytes_gib(32768):.0f} GiB: met")
    out += ["", "The matmul peak is one 2048 x 2048 product; the fused kernel exceeds it at some sizes, so read "
                "'of peak' as relative."]
    if payload.get("tuning"):
        best = min(payload["tuning"], key=lambda r: r["seconds"])
        worst = max(payload["tuning"], key=lambda r: r["seconds"])
        out += ["", f"Chunk tuning at n=4096 (not causal): best (query, key) = {tuple(best['chunks'])} at "
                    f"{best['seconds']:.3f} s, worst {tuple(worst['chunks'])} at {worst['seconds']:.3f} s."]
    return out


def moving_mnist_section(payload: dict) -> list[str]:
    target = payload["target"]
    rows = [[g["n_sequences"], g["length"], f"{g['sequences_per_s']:.0f}", f"{g['frames_per_s']:.0f}"]
            for g in payload["generate"]]
    return [
        "## Moving MNIST generation",
        "",
        f"Machine: {_machine(payload)}. Digit pool: {payload['pool_size']} digits ({payload['digits_source']}).",
        "",
        *_table(["sequences", "frames each", "sequences/s", "frames/s"], rows),
        "",
        f"Target: at least {target['sequences_per_s_20_frames']} sequences of 20 frames per second: "
        f"measured {target['measured']:.0f} ({'met' if target['met'] else 'NOT met'}). Training batches "
        f"(PyDataset, batch {payload['sequence_batches']['batch_size']}): "
        f"{payload['sequence_batches']['sequences_per_s']:.0f} sequences/s; per-frame metrics: "
        f"{payload['frame_metrics']['frames_per_s']:.0f} frames/s.",
    ]


def generic_section(name: str, payload: dict) -> list[str]:
    body = {k: v for k, v in payload.items() if k != "machine"}
    return [f"## {name}", "", f"Machine: {_machine(payload)}.", "", "```json",
            json.dumps(body, indent=2), "```"]


def _threads(machine: dict) -> str:
    if machine["backend"] == "torch":
        return f"torch {machine['torch_threads']} intra-op thread(s)"
    if machine["backend"] == "tensorflow":
        counts = [machine.get(f"tf_{kind}_op_threads") for kind in ("intra", "inter")]
        return "tensorflow " + " / ".join(f"{'default (one per core)' if not n else n} {kind}-op thread(s)"
                                          for n, kind in zip(counts, ("intra", "inter")))
    return machine["backend"]


def _plot_rollout(rollout: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("cache", "with key/value cache"), ("no_cache", "recomputing the history")):
        ax.plot(rollout["positions"][1:], [1e3 * s for s in rollout[key]["seconds_per_frame"][1:]], label=label)
    ax.set_xlabel("generated frame (position in the sequence)")
    ax.set_ylabel("time per frame (ms, best of runs)")
    ax.set_title(f"H-TAP rollout cost per frame (latent transition, batch {rollout['batch_size']})")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def video_section(payload: dict) -> list[str]:
    rows = [[r["model"], r["frames"], r["batch_size"], f"{r['seconds']:.3f}", f"{r['frames_per_s']:.0f}",
             f"{r['parameters']:,}"] for r in payload["train"]]
    roll = payload["rollout"]
    last = roll["last_frame"]
    roll_rows = [[label, f"{1e3 * roll[k]['frame_10_s']:.2f}", f"{1e3 * roll[k]['frame_last_s']:.2f}",
                  f"{roll[k]['ratio_last_to_10']:.2f}x", f"{roll[k]['ratio_last10_to_10_19']:.2f}x",
                  f"{roll[k]['rollout_tokens_s']:.3f}"]
                 for k, label in (("cache", "with cache"), ("no_cache", "without cache"))]
    figure = REPORT.parent / "video_rollout.png"
    _plot_rollout(roll, figure)
    target = roll["target"]
    speedup = roll["no_cache"]["rollout_tokens_s"] / roll["cache"]["rollout_tokens_s"]
    return [
        "## Video models: training steps and H-TAP rollout",
        "",
        f"Machine: {_machine(payload)}; {_threads(payload['machine'])}. Quick-profile models "
        f"(`seqattn.experiments.video`), Moving MNIST clips ({payload['digits_source']} digits), one "
        "`train_on_batch` step, best of a few after a warm-up; frames/s counts the frames of the clips.",
        "",
        *_table(["model", "frames", "batch", "s/step", "frames/s", "parameters"], rows),
        "",
        f"Rollout of H-TAP's latent transition, batch {roll['batch_size']}, context {roll['context']} "
        f"(so frames {roll['context'] + 1}..{last} are generated; a step's cost depends only on the history "
        "length), best per position over several rollouts:",
        "",
        *_table(["", "frame 10 (ms)", f"frame {last} (ms)", f"frame {last} / frame 10",
                 f"frames {last - 9}-{last} / frames 10-19", f"whole `rollout_tokens` (s)"], roll_rows),
        "",
        f"Target: with the cache, frame {last} costs at most {target['max_ratio_with_cache']}x frame 10: "
        f"measured {target['measured']:.2f}x ({'met' if target['met'] else 'NOT met'}). The whole "
        f"`rollout_tokens` call is {speedup:.2f}x faster with the cache.",
        "",
        f"![H-TAP rollout cost per frame]({figure.name})",
        "",
        f"(The figure starts at frame {roll['context'] + 2}: frame {roll['context'] + 1} is the step that "
        "processes the whole context.)",
    ]


def forecast_section(payload: dict) -> list[str]:
    train = payload["train"]
    rows = [[r["model"], f"{r['windows_per_s']:.0f}", f"{1e3 * r['seconds_per_step']:.1f}",
             f"{r['speed_vs_hybrid']:.2f}x", f"{r['parameters']:,}"] for r in train["rows"]]
    out = [
        "## Forecaster training throughput",
        "",
        f"Machine: {_machine(payload)}; {_threads(payload['machine'])}. ETTh1 '{train['features']}' "
        f"({train['channels']} channels, {train['train_windows']} training windows), L={train['lookback']}, "
        f"H={train['horizon']}, quick-profile models (`seqattn.experiments.forecast`), `train_on_batch` over "
        f"{train['rows'][0]['steps']} batches of {train['rows'][0]['batch_size']}, best of a few passes.",
        "",
        *_table(["model", "windows/s", "ms/step", "speed vs hybrid", "parameters"], rows),
    ]
    if "cli" in payload:
        cli = payload["cli"]
        program, *arguments = cli["command"].split()
        command = " ".join([Path(program).name, *arguments])  # the program by name, not where it was installed
        out += ["", f"`{command}` (four models with early stopping, evaluation, MLflow logging): "
                    f"{cli['wall_s']:.0f} s wall."]
    return out


def backends_section(payload: dict) -> list[str]:
    names = list(payload["results"])
    description = {key: next((r[key]["case"] for r in payload["results"].values() if "case" in r[key]), key)
                   for key in payload["cases"]}

    def cell(result: dict, field: str, digits: int) -> str:
        return f"{result[field]:.{digits}f}" if field in result else "failed"

    rows = [[description[key]] + [cell(payload["results"][n][key], "seconds", 4) for n in names]
            for key in payload["cases"]]
    scores = payload["summary"]["geomean_vs_fastest"]
    rows.append(["**geometric mean, time / fastest**"] + [f"{scores[n]:.2f}x" if n in scores else "n/a" for n in names])
    warmups = [[description[key]] + [cell(payload["results"][n][key], "warmup_seconds", 1) for n in names]
               for key in payload["cases"]]
    errors = sorted({f"{n}, {key}: {r['error']}" for n in names for key, r in payload["results"][n].items()
                     if "error" in r})
    best = payload["summary"]["best"]
    load = [f"{payload[k][0]:.1f}" for k in ("load_average_start", "load_average_end") if k in payload]
    machines = [r["machine"] for per_case in payload["results"].values() for r in per_case.values() if "machine" in r]
    loads = [r["load_average"] for per_case in payload["results"].values() for r in per_case.values()
             if "load_average" in r]
    versions = {k: m[k] for m in machines for k in ("python", "keras", "numpy", "torch", "tensorflow", "jax") if k in m}
    m = payload["machine"]
    out = [
        "## Backends: every training step of the study on each backend and compile mode",
        "",
        f"Machine: {m['cpu_count']} CPU cores ({m['processor']}); "
        f"{', '.join(f'{k} {v}' for k, v in versions.items())}; shared with other jobs (1-minute load average "
        f"{' at the start, '.join(load)} at the end"
        + (f", {min(loads):.1f} to {max(loads):.1f} after the cases" if loads else "")
        + "). Each (variant, threads, case) in its own process, a case's variants back to back; "
        "`@1` / `@2`: 1 or 2 threads (torch intra-op threads; tensorflow intra- and inter-op threads). "
        "`-compile`: torch.compile (jit_compile=True); `-xla`: tensorflow with XLA (jit_compile=True); "
        "plain tensorflow is Keras's CPU default, a tf.function graph. Seconds per step, best of a few after a "
        "warm-up step (which traces or compiles).",
        "",
        *_table(["training step"] + [f"{n} (s)" for n in names], rows),
        "",
        f"Fastest overall: **{best}**." if best else "No variant ran every case.",
        "",
        f"The project's default (`seqattn.backend`): {DEFAULT_BACKEND}; torch runs one thread and tensorflow its own default (one per core) unless OMP_NUM_THREADS is set.",
    ]
    if payload.get("not_installed"):
        out += ["", f"Not installed, not measured: {', '.join(payload['not_installed'])}."]
    if errors:
        out += ["", "Failed:"] + [f"- {e}" for e in errors]
    out += ["", "Warm-up step (tracing, compilation), seconds:", "",
            *_table(["training step"] + names, warmups)]
    return out


SECTIONS = {"attention": attention_section, "moving_mnist": moving_mnist_section, "video": video_section,
            "forecast": forecast_section, "backends": backends_section}


def main() -> None:
    lines = ["# Benchmark results", "",
             "Generated by `make bench` (`python -m benchmarks.run_all`) from `benchmarks/results/*.json`.", ""]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        payload = json.loads(path.read_text())
        render = SECTIONS.get(path.stem, lambda p: generic_section(path.stem, p))
        lines += render(payload) + [""]
    REPORT.write_text("\n".join(lines))
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
