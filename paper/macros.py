"""`generated/macros.tex`: every number the prose uses, and the words whose choice depends on a
measurement (e.g. \\farVerdict is "H-TAP's error is lower than TAP's" or "the test does not
separate the two models"), so the claims follow the results. The numbers come from the accessors
(`results`, `video_results`), the verdicts from `claims`."""

import re
from collections import Counter

from paper import claims
from paper.results import (
    PartResults, environment, etth1_rows_of, etth1_table_rows, forecast_ablation, forecast_config,
    forecast_lookbacks, forecast_pairs, forecast_seeds, forecast_selections,
    forecast_valid_prediction_time,
    retrieval_config, retrieval_metric, training_seconds,
)
from paper.text import count, counted, duration, every, latex_escape, listing, num, pct, plural, pm, words
from paper.video_results import (
    LATENT_MODELS, VIDEO_MODEL_ORDER, video_baseline_metric, video_budget_curve, video_change, video_codec_metric,
    video_config,
    video_metric, video_mnist_fallback, video_model_label, video_models, video_params, video_span_per_head,
    video_span_per_step, video_tracking_ladder, video_window,
)
from seqattn.published import OPENSTL_CONVLSTM_EPOCHS, OPENSTL_CONVLSTM_MSE, PUBLISHED_ETTH1_MSE
from seqattn.errors import ConfigError
from seqattn.metrics.forecast import VPT_THRESHOLD

# ---- Part 2 sentences -------------------------------------------------------------------------


def mean_over(values: dict[int, float], horizons: list[int]) -> float:
    return sum(values[h] for h in horizons) / len(horizons)


def etth1_mse(forecast: PartResults, model: str) -> dict[int, dict[int, float]]:
    """A model's mean multivariate ETTh1 MSE by lookback, then horizon."""
    return {lookback: {h: row.mse.mean for h, row in rows.items()}
            for lookback, rows in etth1_rows_of(forecast, model).items()}


def without_attention_words(forecast: PartResults, hybrid: dict[int, float]) -> str:
    """Whether the same RNN without attention (seq2seq) is below TimeMixer where the hybrid is, in
    which case the comparison with the published row is not one that attention wins."""
    timemixer = PUBLISHED_ETTH1_MSE["timemixer"]
    _, horizons, cells = etth1_table_rows(forecast, timemixer["lookback"])
    seq2seq = {h: cells[("seq2seq", h)].mse.mean for h in horizons if ("seq2seq", h) in cells}
    if not seq2seq:
        return ""
    if claims.horizons_below(seq2seq, timemixer["mse"]) == claims.horizons_below(hybrid, timemixer["mse"]):
        return ", as is the same RNN without attention"
    versus = claims.published_words(timemixer["label"], seq2seq, timemixer["mse"])
    return f" (the same RNN without attention is {versus})"


def forecast_headline(forecast: PartResults) -> str:
    """The abstract's Part 2 clause: the hybrid against TimeMixer at TimeMixer's lookback, where it
    ran, and at its own best lookback (lowest MSE averaged over the horizons) against PatchTST/64."""
    hybrid = etth1_mse(forecast, "hybrid")
    timemixer, patchtst = PUBLISHED_ETTH1_MSE["timemixer"], PUBLISHED_ETTH1_MSE["patchtst"]
    clauses = []
    if timemixer["lookback"] in hybrid:
        ours = hybrid[timemixer["lookback"]]
        versus = claims.published_words(timemixer["label"], ours, timemixer["mse"])
        clauses.append(f"at $L={timemixer['lookback']}$ is {versus}{without_attention_words(forecast, ours)}")
    horizons = {L: sorted(set(mse) & set(patchtst["mse"])) for L, mse in hybrid.items()}
    means = {L: mean_over(mse, horizons[L]) for L, mse in hybrid.items() if horizons[L]}
    best = claims.best_lookback(means)
    shared = horizons[best]
    comparison = claims.mean_versus_words(means[best], patchtst["label"], mean_over(patchtst["mse"], shared),
                                          patchtst["lookback"])
    where = f"over the {words(len(shared))} horizons" if len(shared) > 1 else f"at $H={shared[0]}$"
    clauses.append(f"at its best lookback by test MSE, $L={best}$, averages {comparison} {where}")
    return ", and ".join(clauses)


# The options the validation selection chooses besides the keys, as the paper counts them.
# The forecaster's decoding modes (`Forecaster(decoding=...)`) in the method's words.
DECODING_WORDS = {"direct": "direct (all horizon segments at once)",
                  "autoregressive": "autoregressive (one horizon segment after another)"}
OPTION_CHOICES = {("loss", "mae"): "MAE loss over MSE", ("normalisation", "last"): "last-value normalisation over RevIN"}


def selection_sentence(forecast: PartResults) -> str:
    """One sentence on how the options were chosen, on validation windows per lookback and horizon,
    and how often each was chosen; results/forecast/results.md lists every choice."""
    selections = forecast_selections(forecast)
    if not selections:
        return ""
    first = next(iter(selections.values()))
    keys = Counter(s.options["key_segment"] for s in selections.values() if "key_segment" in s.options)
    counts = [f"{k}-step keys in {n}" for k, n in sorted(keys.items(), key=lambda kv: (-kv[1], kv[0]))]
    counts += [f"{words} in {n}" for (name, value), words in OPTION_CHOICES.items()
               if (n := sum(s.options.get(name) == value for s in selections.values()))]
    counts[0] += f" of the {len(selections)} settings"
    return (f"Options are chosen on validation windows only, per lookback and horizon, by the "
            f"{latex_escape(first.model)}'s MSE (seed {first.seed}): {listing(counts)} "
            f"(each in \\texttt{{results/}}).")


def paired_sentence(forecast: PartResults) -> str:
    pairs = forecast_pairs(forecast)
    return claims.paired_verdict([pairs[key] for key in sorted(pairs)])


def paired_blocks_words(forecast: PartResults) -> str:
    """How many blocks of H windows per seed the paired bootstrap resamples, from the most (shortest
    horizon) to the fewest (longest): "29 to 3 per seed"."""
    blocks = [pair.blocks for pair in forecast_pairs(forecast).values()]
    return f"{max(blocks)} per seed" if max(blocks) == min(blocks) else f"{max(blocks)} to {min(blocks)} per seed"


def forecast_span_words(forecast: PartResults) -> str:
    """The hybrid's Attention Span per lookback, averaged over horizons and seeds."""
    pairs = forecast_pairs(forecast)
    by_lookback = {}
    for (lookback, _), pair in sorted(pairs.items()):
        by_lookback.setdefault(lookback, []).append(pair)
    steps = ", ".join(num(sum(p.span for p in ps) / len(ps), 1) for ps in by_lookback.values())
    normalised = ", ".join(num(sum(p.normalised_span for p in ps) / len(ps), 2) for ps in by_lookback.values())
    return f"{steps} steps at $L={', '.join(str(L) for L in by_lookback)}$ (normalised: {normalised})"


def repeat_check_sentence(forecast: PartResults) -> str:
    models, horizons, cells = etth1_table_rows(forecast, forecast_lookbacks(forecast)[0])
    published = PUBLISHED_ETTH1_MSE["repeat"]["mse"]
    shared = [h for h in horizons if ("repeat", h) in cells and h in published]
    if not shared:
        return ""
    return claims.repeat_check(max(abs(round(cells[("repeat", h)].mse.mean, 3) - published[h]) for h in shared))


def forecast_options_words(forecast: PartResults) -> str:
    """The reported run's normalisation of each window (and the one validation could choose
    instead), and whether channels were modelled independently."""
    names = {"revin": "reversible instance normalisation~\\cite{kim2022revin}",
             "last": "last-value normalisation~\\cite{zeng2023transformers}"}
    normalisation = forecast_config(forecast, "normalisation")
    alternatives = {options.get("normalisation") for options in forecast_config(forecast, "refinements").values()}
    alternatives = sorted(alternatives & set(names) - {normalisation})
    words = f"with {names[normalisation]}" if normalisation in names else "without normalising windows"
    if alternatives:
        words += f" or {' or '.join(names[a] for a in alternatives)}"
    independent = forecast_config(forecast, "channel_independent")
    return words + (" and " if independent else ", without ") + "channel independence~\\cite{nie2023patchtst}"


def chaotic_sentence(forecast: PartResults) -> str:
    """One sentence on the chaotic series, or nothing when the run did not include them."""
    names = {"mackey-glass": "Mackey--Glass", "lorenz": "Lorenz-63"}
    found = {name: forecast_valid_prediction_time(forecast, key) for key, name in names.items()}
    found = {name: vpt for name, vpt in found.items() if vpt is not None}
    if not found:
        return ""
    listed = " and ".join(f"{pm(vpt, 2)} on {name}" for name, vpt in found.items())
    return (f"On the chaotic series the hybrid's valid prediction time (normalised RMSE below "
            f"{VPT_THRESHOLD:g}) is {listed}, in time units.")


def ablation_sentence(forecast: PartResults) -> str:
    rows = forecast_ablation(forecast)
    if not rows:
        return ""
    listed = "; ".join(f"{latex_escape(variant)} {num(mse, 3)}" for variant, _, mse in rows)
    return f"One-seed ablations of the hybrid at $H={rows[0][1]}$ (test MSE): {listed}."


def not_run_words(forecast: PartResults, video: PartResults) -> str:
    """What the paper's run left out, from its own configs."""
    items = ["GPU-scale training"]
    if "etth2" not in set(forecast_config(forecast, "datasets")):
        items.append("ETTh2")
    missing = [str(L) for L in (96, 336, 720) if L not in forecast_lookbacks(forecast)]
    if missing:
        items.append(f"lookback{'s' if len(missing) > 1 else ''} {listing(missing)}")
    if forecast_config(forecast, "features") == "M":
        items.append("univariate ('S') runs")
    if not forecast_ablation(forecast):
        items.append("forecaster ablations")
    if set(video_models(video)) <= set(VIDEO_MODEL_ORDER):
        items.append("other H-TAP depths, heads or position codes")
    items.append("stochastic latents")
    return listing(items)


# ---- Part 3 sentences -------------------------------------------------------------------------


def change_macros(video: PartResults, window: str, prefix: str) -> dict[str, str]:
    """\\farChange, \\farChangeLow, \\farChangeHigh, \\farInterval, \\farVerdict (and short...)."""
    change = video_change(video, window)
    macros = {f"{prefix}Change{key}": value for key, value in claims.change_numbers(change).items()}
    macros[f"{prefix}Interval"] = claims.interval_words(change)
    macros[f"{prefix}Verdict"] = claims.change_verdict(change)
    return macros


def blank_words(video: PartResults, window: str = "far") -> dict[str, str]:
    """Which models beat all-black frames (skill 0) on the far window by more than their spread over
    seeds: all models for the body, the latent ones for the abstract."""
    models = video_models(video)
    skill = {m: video_metric(video, m, "skill", window) for m in models}
    beating = [m for m in models if claims.beats_by_more_than_spread(skill[m], 0.0)]
    n_seeds = len(video.get("seeds"))
    latent = [m for m in LATENT_MODELS if m in models]
    return {
        "blankVerdict": claims.blank_verdict([video_model_label(video, m) for m in beating],
                                             [video_model_label(video, m) for m in models], n_seeds),
        "blankVerdictLatent": claims.blank_verdict([video_model_label(video, m) for m in latent if m in beating],
                                                   [video_model_label(video, m) for m in latent], n_seeds),
    }


def mean_frame_words(video: PartResults, window: str = "far") -> dict[str, str]:
    """The mean training frame, a prediction that knows nothing of the sequence, against the models
    on the far window (a model with a higher MSE has lost more than the digits' positions): all
    models for the body, the latent ones for the abstract."""
    mse = video_baseline_metric(video, "mean_frame", "mse", window)
    skill = video_baseline_metric(video, "mean_frame", "skill", window)
    n_seeds = len(video.get("seeds"))

    def verdict(models: list[str], reference: str) -> str:
        # Compared as printed in the table (one decimal): a model printed equal to it is not higher.
        above = [m for m in models if round(video_metric(video, m, "mse", window).mean, 1) > round(mse, 1)]
        beating = [m for m in models
                   if claims.beats_by_more_than_spread(video_metric(video, m, "skill", window), skill)]
        labels = [video_model_label(video, m) for m in models]
        return claims.reference_verdict([video_model_label(video, m) for m in above],
                                        [video_model_label(video, m) for m in beating], labels, n_seeds, reference)

    models = video_models(video)
    return {
        "meanFrameFarMSE": num(mse, 1),
        "meanFrameVerdict": verdict(models, "it"),
        "meanFrameVerdictLatent": verdict([m for m in LATENT_MODELS if m in models], "the mean training frame"),
    }


def ladder_words(video: PartResults, window: str = "far") -> dict[str, str]:
    """The tracking ladder on both windows, and where the best model's MSE falls on it."""
    short, far = video_tracking_ladder(video, "short"), video_tracking_ladder(video, window)
    best = min(video_models(video), key=lambda m: video_metric(video, m, "mse", window).mean)
    return {
        "ladderNoises": " or ".join(listing([f"{noise:g}" for noise, _ in far]).rsplit(" and ", 1)),
        "ladderShortMSE": listing([num(mse, 1) for _, mse in short]),
        "ladderFarMSE": listing([num(mse, 1) for _, mse in far]),
        "ladderVerdict": claims.ladder_verdict(video_model_label(video, best),
                                               video_metric(video, best, "mse", window).mean, far),
    }


def floor_words(video: PartResults, window: str = "far") -> dict[str, str]:
    """The codec floor against the latent models' MSE on the far window."""
    floor = video_codec_metric(video, "mse", window)
    ratios = {video_model_label(video, m): video_metric(video, m, "mse", window).mean / floor.mean
              for m in LATENT_MODELS}
    return {
        "codecFarMSE": pm(floor, 1),
        "floorRatios": listing([f"{num(r, 1)}$\\times$" for r in ratios.values()]),
        "floorVerdict": claims.floor_verdict(ratios),
    }


def budget_words(video: PartResults) -> dict[str, str]:
    """The change at the first and the last stage checkpoint, and the verdict over all of them."""
    points = video_budget_curve(video)

    def at(point):
        return f"{claims.change_numbers(point.change)['']} after {count(point.updates)} updates"

    return {"budgetChanges": f"from {at(points[0])} to {at(points[-1])}",
            "budgetVerdict": claims.budget_verdict([p.change for p in points])}


def span_words(video: PartResults) -> dict[str, str]:
    frames, span, uniform = video_span_per_step(video)
    normalised = span / uniform
    per_head = video_span_per_head(video)
    return {
        "htapSpanFirstFrame": str(int(frames[0])),
        "htapSpanLastFrame": str(int(frames[-1])),
        "htapSpanFirst": num(span[0], 1),
        "htapSpanLast": num(span[-1], 1),
        "htapSpanTrend": claims.trend(span[0], span[-1]),
        "htapNormSpanFirst": num(normalised[0], 2),
        "htapNormSpanLast": num(normalised[-1], 2),
        "htapHeadContrast": claims.head_contrast(per_head.min(), per_head.max()),
        "htapSpanHeadMin": num(per_head.min(), 1),
        "htapSpanHeadMax": num(per_head.max(), 1),
    }


def video_macros(video: PartResults) -> dict[str, str]:
    context = int(video_config(video, "context"))
    short_first, short_last = video_window(video, "short")
    far_first, far_last = video_window(video, "far")
    compared = video_change(video, "far")
    grid, patch = int(video_config(video, "latent_grid")), int(video_config(video, "token_patch"))
    return {
        "videoContext": str(context),
        "videoLongFrames": str(video_config(video, "long_frames")),
        "videoLongHorizon": str(int(video_config(video, "long_frames")) - context),
        "shortFirst": str(short_first),
        "shortLast": str(short_last),
        "shortHorizon": str(short_last - short_first + 1),
        "farFirst": str(far_first),
        "farLast": str(far_last),
        "videoMaxRollout": str(video_config(video, "max_rollout")),
        "videoStages": words(int(video_config(video, "stages"))),
        "videoTransitionUpdates": count(video_config(video, "transition_updates")),
        "videoBatch": str(video_config(video, "batch_size")),
        "videoRate": f"{float(video_config(video, 'learning_rate')):g}",
        "videoTrainSequences": count(video_config(video, "train_sequences")),
        "videoCodecUpdates": count(video_config(video, "codec_updates")),
        "videoDecoded": every(int(video_config(video, "decode_every")), "decoded prediction"),
        # runs from before the option froze the whole codec
        "videoFrozen": ("encoder frozen and its own decoder fine-tuned by the pixel loss"
                        if video.has("config", "tune_decoder") and video_config(video, "tune_decoder")
                        else "codec frozen"),
        "convlstmFrames": str(context + int(video_config(video, "convlstm_horizon"))),
        "videoTestSequences": count(video_config(video, "test_sequences")),
        "videoNSeeds": words(len(video.get("seeds"))),
        "compareSequences": count(compared.sequences),
        "compareSeeds": f"{words(compared.seeds)} seed{'' if compared.seeds == 1 else 's'}",
        "latentGrid": f"{grid}\\times{grid}",
        "latentChannels": str(video_config(video, "latent_channels")),
        "tokenPatch": f"{patch}\\times{patch}",
        "tapRNN": str(video_config(video, "rnn")).upper(),
        "htapBlocks": counted(int(video_config(video, "num_layers")), "block"),
        "htapHeads": words(int(video_config(video, "num_heads"))),
        "tapTransitionParams": count(video_params(video, "tap", "transition")),
        "htapTransitionParams": count(video_params(video, "htap", "transition")),
        "tapParams": count(video_params(video, "tap")),
        "htapParams": count(video_params(video, "htap")),
        "convlstmParams": count(video_params(video, "convlstm")),
        "convlstmShortMSE": num(video_metric(video, "convlstm", "mse", "short").mean, 1),
        "claimVerdict": claims.claim_verdict(compared),
        "claimedCut": f"{claims.CLAIMED_FAR_CUT_PCT:.0f}",
        "openstlConvlstmMSE": num(OPENSTL_CONVLSTM_MSE, 2),
        "openstlConvlstmEpochs": str(OPENSTL_CONVLSTM_EPOCHS),
        "mnistNote": ("" if not video_mnist_fallback(video) else
                      " The MNIST files were not available to this run: its digits are scikit-learn's "
                      "$8\\times8$ digits upscaled to $28\\times28$, so the numbers are not comparable "
                      "with published Moving MNIST results."),
        **change_macros(video, "far", "far"),
        **change_macros(video, "short", "short"),
        **blank_words(video),
        **mean_frame_words(video),
        **floor_words(video),
        **ladder_words(video),
        **budget_words(video),
        **span_words(video),
    }


def study_backends(parts: list[PartResults]) -> str:
    """The Keras backend of each part, in part order, e.g. "\\texttt{torch} (Part 1), \\texttt{tensorflow}
    (Parts 2--3)"; one name when every part ran on the same backend."""
    by_backend: dict[str, list[int]] = {}
    for number, part in enumerate(parts, start=1):
        by_backend.setdefault(environment(part, "backend"), []).append(number)
    if len(by_backend) == 1:
        return f"\\texttt{{{latex_escape(next(iter(by_backend)))}}}"

    def which(numbers: list[int]) -> str:
        if len(numbers) == 1:
            return f"Part {numbers[0]}"
        if numbers == list(range(numbers[0], numbers[-1] + 1)):
            return f"Parts {numbers[0]}--{numbers[-1]}"
        return f"Parts {listing([str(n) for n in numbers])}"

    return ", ".join(f"\\texttt{{{latex_escape(b)}}} ({which(n)})" for b, n in by_backend.items())


def paper_macros(parts: dict[str, PartResults]) -> dict[str, str]:
    attention, forecast, video = parts["attention"], parts["forecast"], parts["video"]
    n_seeds = len(forecast_seeds(forecast))
    macros = {
        # Part 1
        "retrievalAlignAcc": pct(100 * retrieval_metric(attention, "alignment_accuracy").mean),
        "retrievalAnswerAcc": pct(100 * retrieval_metric(attention, "answer_accuracy").mean),
        "retrievalSpan": num(retrieval_metric(attention, "attention_span").mean, 2),
        "retrievalCorrectSpan": num(retrieval_metric(attention, "correct_attention_span").mean, 2),
        "retrievalSpanRelation": claims.span_relation(retrieval_metric(attention, "attention_span").mean,
                                                      retrieval_metric(attention, "correct_attention_span").mean),
        "retrievalPairs": str(retrieval_config(attention, "n_pairs")),
        "retrievalKeys": str(retrieval_config(attention, "n_keys")),
        "retrievalHeads": words(int(retrieval_config(attention, "num_heads"))),
        "retrievalDModel": str(retrieval_config(attention, "d_model")),
        "retrievalEpochs": plural(int(retrieval_config(attention, "epochs")), "epoch"),
        "retrievalNSeeds": words(len(attention.get("seeds"))),
        # Part 2
        "forecastLookbacks": ", ".join(str(L) for L in forecast_lookbacks(forecast)),
        "forecastSeeds": words(n_seeds) + (" seed" if n_seeds == 1 else " seeds"),
        "forecastHeadline": forecast_headline(forecast),
        "forecastSelection": selection_sentence(forecast),
        "pairedVerdict": paired_sentence(forecast),
        "pairedBlocks": paired_blocks_words(forecast),
        "forecastSpan": forecast_span_words(forecast),
        "forecastRNN": str(forecast_config(forecast, "rnn")).upper(),
        "forecastSegment": str(forecast_config(forecast, "segment")),
        "forecastDecoding": DECODING_WORDS[forecast_config(forecast, "decoding")],
        "forecastOptions": forecast_options_words(forecast),
        "chaoticSentence": chaotic_sentence(forecast),
        "repeatCheck": repeat_check_sentence(forecast),
        "forecastAblation": ablation_sentence(forecast),
        "notRun": not_run_words(forecast, video),
        # Part 3
        **video_macros(video),
        # The run
        "studyBackend": study_backends([attention, forecast, video]),
        "studyKeras": latex_escape(environment(attention, "keras")),
        "studyProfile": latex_escape(str(attention.get("profile"))),
        "studyDuration": duration(sum(training_seconds(p) for p in parts.values())),
        "videoDuration": duration(training_seconds(video)),
    }
    for name in macros:
        if not re.fullmatch(r"[A-Za-z]+", name):
            raise ConfigError(f"macro name {name!r} must be letters only")
    return macros


def macros_tex(macros: dict[str, str]) -> str:
    lines = ["% Generated by `python -m paper.build` from results/; do not edit."]
    lines += [f"\\newcommand{{\\{name}}}{{{value}}}" for name, value in macros.items()]
    return "\n".join(lines) + "\n"
