"""The paper's claims: pure functions from measured numbers to a verdict and the words that state
it, so that whatever a run measures, the prose says it as measured.

Comparisons are made on the numbers as printed (rounded to the digits the paper shows), so a
sentence never contradicts the numbers beside it: an interval printed as [-3.1%, 0.0%] is not
said to exclude zero.
"""

from paper.results import Stat
from paper.text import listing, num, signed, words
from paper.video_results import Change

# The claim the study was set up to test: H-TAP cuts far-horizon MSE by about 25%.
CLAIMED_FAR_CUT_PCT = 25.0
# A latent model is "near" the codec floor when its MSE is within this factor of the floor's:
# then the codec, not the transition, bounds it.
NEAR_FLOOR_RATIO = 1.5
CHANGE_DECIMALS = 1  # changes are printed in percent with one decimal
MSE_DECIMALS = 3  # forecast MSE is printed with three decimals


def _printed(value: float, decimals: int) -> float:
    return round(value, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


# ---- H-TAP vs TAP ------------------------------------------------------------------------------


def excludes_zero(change: Change) -> bool:
    """True when the printed 95% interval lies entirely on one side of zero."""
    low, high = _printed(change.low, CHANGE_DECIMALS), _printed(change.high, CHANGE_DECIMALS)
    return low > 0 or high < 0


def direction(change: Change) -> str:
    """"lower", "higher" or "unchanged": H-TAP's MSE against TAP's, as printed."""
    value = _printed(change.pct, CHANGE_DECIMALS)
    return "lower" if value < 0 else "higher" if value > 0 else "unchanged"


def interval_words(change: Change) -> str:
    return "excludes zero" if excludes_zero(change) else "includes zero"


def change_verdict(change: Change) -> str:
    """What the paired comparison shows: a measured difference, or none the test can separate."""
    if not excludes_zero(change):
        return "the test does not separate the two models"
    return f"H-TAP's error is {direction(change)} than TAP's"


def claim_verdict(change: Change, claimed_pct: float = CLAIMED_FAR_CUT_PCT) -> str:
    """The measured change against the claimed cut of `claimed_pct` percent."""
    claim = f"the {claimed_pct:.0f}\\% cut the project set out to test"
    low, high = _printed(change.low, CHANGE_DECIMALS), _printed(change.high, CHANGE_DECIMALS)
    includes_claim = low <= -claimed_pct <= high
    if not excludes_zero(change):
        return (f"neither confirming nor ruling out {claim}" if includes_claim
                else f"no measured change, let alone {claim}")
    if direction(change) == "higher":
        return f"the opposite of {claim}"
    if high <= -claimed_pct:
        return f"at least {claim}"
    if includes_claim:
        return f"consistent with {claim}"
    return f"short of {claim}"


def change_numbers(change: Change) -> dict[str, str]:
    """The printed pieces of a change: signed percent and its interval ends."""
    return {key: f"{signed(value, CHANGE_DECIMALS)}\\%"
            for key, value in (("", change.pct), ("Low", change.low), ("High", change.high))}


def budget_verdict(changes: list[Change]) -> str:
    """How the H-TAP vs TAP comparison behaved over the stage checkpoints."""
    excluding = sum(excludes_zero(c) for c in changes)
    directions = {direction(c) for c in changes if excludes_zero(c)}
    n = len(changes)
    if excluding == 0:
        return f"the interval includes zero at every one of the {words(n)} checkpoints"
    if len(directions) > 1:
        return (f"the interval excludes zero at {words(excluding)} of {words(n)} checkpoints, "
                f"with H-TAP lower at some and higher at others")
    side = directions.pop()
    scope = "every checkpoint" if excluding == n else f"{words(excluding)} of {words(n)} checkpoints"
    return f"H-TAP's error is {side} than TAP's, with an interval that excludes zero, at {scope}"


# ---- against trivial predictions and the codec floor -------------------------------------------


def beats_by_more_than_spread(score: Stat, reference: float, decimals: int = 3) -> bool:
    """A higher-is-better score (e.g. skill) beats `reference` by more than its std over seeds.

    With one seed there is no spread, and any margin above the reference counts.
    """
    return _printed(score.mean, decimals) - reference > _printed(score.std, decimals)


def blank_verdict(beating: list[str], models: list[str], n_seeds: int, reference: str = "all-black frames") -> str:
    """Which models beat a trivial prediction (all-black frames: skill 0) by more than their spread over seeds."""
    if not beating:
        subject, plural_verb = ("neither model" if len(models) == 2 else "no model"), False
    elif len(beating) == len(models):
        subject, plural_verb = ("both models", True) if len(models) == 2 else ("every model", False)
    else:
        subject, plural_verb = f"only {listing(beating)}", len(beating) > 1
    verb = "beat" if plural_verb else "beats"
    if n_seeds > 1:
        margin = f"by more than {'their' if plural_verb else 'its'} spread over seeds"
    else:
        margin = "(one seed, so no spread over seeds to compare)"
    return f"{subject} {verb} {reference} {margin}"


def reference_verdict(above: list[str], beating: list[str], models: list[str], n_seeds: int, reference: str) -> str:
    """Models against a trivial prediction that a model could at least match (the mean training frame):
    that every model's MSE is higher than its when so, else which beat it by more than their spread."""
    if above and len(above) == len(models):
        subject = "both models have" if len(models) == 2 else "every model has"
        return f"{subject} a higher MSE than {reference}"
    return blank_verdict(beating, models, n_seeds, reference)


def ladder_verdict(best: str, mse: float, rungs: list[tuple[float, float]]) -> str:
    """Where the best model's MSE falls on the tracking ladder, (direction error in degrees, MSE) by
    error: below every observer, between two, or above the loosest (and so every model is)."""
    if mse <= rungs[0][1]:
        return f"{best}, the best, is below even the {rungs[0][0]:g}$^\\circ$ observer"
    for (tight, low), (loose, high) in zip(rungs, rungs[1:]):
        if low < mse <= high:
            return f"{best}, the best, lies between the {tight:g}$^\\circ$ and {loose:g}$^\\circ$ observers"
    return f"every model is above the {rungs[-1][0]:g}$^\\circ$ observer"


def near_floor(model_mse: float, floor_mse: float, ratio: float = NEAR_FLOOR_RATIO) -> bool:
    """True when a latent model's MSE is within `ratio` times the codec's reconstruction MSE."""
    return model_mse <= ratio * floor_mse


def floor_verdict(ratios: dict[str, float], ratio: float = NEAR_FLOOR_RATIO) -> str:
    """Model label -> its MSE over the floor's; whether the codec or the transition bounds them."""
    near = [label for label, r in ratios.items() if r <= ratio]
    if not near:
        return "the transition, not the codec, bounds them"
    if len(near) == len(ratios):
        return "the codec, not the transition, bounds them"
    return f"the codec bounds {listing(near)}; the transition bounds the other"


# ---- Parts 1 and 2 ----------------------------------------------------------------------------


def span_relation(learned: float, correct: float) -> str:
    """How the learned span compares with the correct alignment's (within 5% counts as matching)."""
    if abs(learned - correct) <= 0.05 * abs(correct):
        return "matches"
    return "is longer than" if learned > correct else "is shorter than"


def trend(first: float, last: float) -> str:
    return "grows" if last > first else "shrinks"


def head_contrast(per_head_min: float, per_head_max: float) -> str:
    if per_head_max > 3 * per_head_min:
        return "so some heads track recent frames while others read far back"
    return "so all heads read over distances of the same order"


def horizons_below(ours: dict[int, float], published: dict[int, float]) -> list[int]:
    """The horizons, of those both report, where our MSE as printed is below the published one."""
    return [h for h in sorted(set(ours) & set(published))
            if _printed(ours[h], MSE_DECIMALS) < _printed(published[h], MSE_DECIMALS)]


def published_words(label: str, ours: dict[int, float], published: dict[int, float]) -> str:
    """Our MSE per horizon against a published row at the horizons both report, as printed, with the
    margins where we are below it: "below TimeMixer at every horizon by 0.005 to 0.019", "below
    TimeMixer at two of four horizons ($H=96, 192$) by 0.010", or "not below TimeMixer at any horizon"."""
    shared = sorted(set(ours) & set(published))
    if not shared:
        raise ValueError(f"no horizon shared with {label}'s published row")
    below = horizons_below(ours, published)
    if not below:
        return f"not below {label} at any horizon"
    margins = sorted(_printed(published[h], MSE_DECIMALS) - _printed(ours[h], MSE_DECIMALS) for h in below)
    by = f"{margins[0]:.{MSE_DECIMALS}f}" + ("" if len(margins) == 1 else f" to {margins[-1]:.{MSE_DECIMALS}f}")
    if len(below) == len(shared):
        return f"below {label} at every horizon by {by}"
    listed = ", ".join(str(h) for h in below)
    return f"below {label} at {words(len(below))} of {words(len(shared))} horizons ($H={listed}$) by {by}"


def best_lookback(mean_mse: dict[int, float]) -> int:
    """The lookback with the lowest MSE averaged over horizons, as printed; the shorter one on a tie."""
    return min(sorted(mean_mse), key=lambda lookback: _printed(mean_mse[lookback], MSE_DECIMALS))


def mean_versus_words(ours: float, label: str, published: float, lookback: int) -> str:
    """An MSE averaged over horizons against a published row's average over the same horizons:
    "0.452 (above PatchTST/64's 0.413 at $L=512$)"."""
    a, b = _printed(ours, MSE_DECIMALS), _printed(published, MSE_DECIMALS)
    relation = "below" if a < b else "above" if a > b else "equal to"
    return f"{num(a, MSE_DECIMALS)} ({relation} {label}'s {num(b, MSE_DECIMALS)} at $L={lookback}$)"


def paired_verdict(changes: list) -> str:
    """How the hybrid compares with the same RNN without attention over the (L, H) settings: each
    change (a `Change` or anything with pct, low and high in percent) counts as lower or higher when
    its printed interval excludes zero, else as not separated."""
    n = len(changes)
    lower = sum(excludes_zero(c) and direction(c) == "lower" for c in changes)
    higher = sum(excludes_zero(c) and direction(c) == "higher" for c in changes)
    unclear = n - lower - higher
    if unclear == n:
        return f"the interval includes zero in every one of the {words(n)} settings"
    if n in (lower, higher):
        side = "lower" if lower else "higher"
        return (f"the hybrid's MSE is {side} in every one of the {words(n)} settings, with an interval that "
                f"excludes zero")
    sides = " and ".join(f"{side} in {words(k)}" for k, side in ((lower, "lower"), (higher, "higher")) if k)
    text = f"the hybrid's MSE is {sides} of the {words(n)} settings, with intervals that exclude zero"
    return text + (f"; the other {words(unclear)} {'includes' if unclear == 1 else 'include'} zero" if unclear else "")


def repeat_check(gap: float) -> str:
    """Our Repeat baseline against the published Repeat row: a check of split and scaling."""
    if gap < 5e-4:
        return "Our Repeat equals the published row at every horizon, a check of splits and scaling."
    if gap <= 2e-3:
        return f"Our Repeat matches the published row to within {num(gap, 3)}, a check of splits and scaling."
    return (f"Our Repeat row differs from the published one by up to {num(gap, 3)}: our windows or "
            f"scaling do not reproduce the published protocol exactly.")
