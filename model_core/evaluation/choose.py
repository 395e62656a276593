"""The rule a candidate network must pass to replace the released one, on the dev sets.

Read from ``streamtalker evaluate -o`` results (the main set and its ``--heldout`` set), one
per setting (best quality and live), of the released network and of the candidate:

1. more must-hold checks passed over both settings wins;
2. on a tie, the P/B/M closed over both sets and settings decide, **but only where the
   difference is more than noise**: a two-sided sign test over the clips (each clip at
   each setting a pair; a clip counts for the network that closed more of its P/B/M over
   the seeds) must give p < ``alpha`` / the number of networks one experiment compares
   with the released one, every checkpoint of a run counted (Bonferroni: of four sibling
   candidates, one passes 0.05 by chance far more often than one alone). A few closures
   of a thousand are not a difference;
3. still tied, the candidate must follow the vowel better everywhere: a higher openness r
   on every set at every setting;
4. otherwise the released network stays.

The sign test is the exact binomial test (scipy.stats.binomtest) on the clips that differ.
"""

from __future__ import annotations

import math

from ..errors import DataError, SettingError

__all__ = ["ALPHA", "compare_to_released", "paired_closures", "result_sets"]

#: The sign test's family level: divided by the number of networks one experiment compares
#: with the released one (every run and every checkpoint of a run counts).
ALPHA = 0.05


def result_sets(result: dict) -> dict:
    """``{set name: result}`` of one ``streamtalker evaluate -o`` result (parsed JSON): its
    main set (``"main"``) and its held-out sets (``"heldout"``...)."""
    out = {"main": result}
    out.update({k: v for k, v in result.items() if k.startswith("heldout")})
    return out


def _set_label(name: str, result: dict) -> str:
    return str(result.get("settings", {}).get("inputs", name))


def paired_closures(released: list[dict], candidate: list[dict]) -> dict:
    """P/B/M closed by two networks on the same clips, paired clip by clip.

    Args:
        released, candidate: ``streamtalker evaluate`` results (parsed JSON), one per
            setting, in the same order, on the same sets (same clips, same seeds).
    Returns:
        ``{"released": int, "candidate": int, "eligible": int, "candidate_more": int,
        "released_more": int, "p": float}``: closures over every set and setting, the
        clips where each closed more, and the two-sided sign test's p (1.0 when no clip
        differs).
    Raises:
        DataError: the results are not on the same sets, clips or settings count.
    """
    from scipy.stats import binomtest

    if len(released) != len(candidate):
        raise DataError(f"{len(released)} released results against {len(candidate)} "
                        f"candidate results; give one per setting for each")
    tot = {"released": 0, "candidate": 0, "eligible": 0, "candidate_more": 0,
           "released_more": 0}
    for k, (a, b) in enumerate(zip(released, candidate)):
        sa, sb = result_sets(a), result_sets(b)
        if set(sa) != set(sb):
            raise DataError(f"result {k}: sets {sorted(sa)} against {sorted(sb)}")
        for name in sa:
            if _set_label(name, sa[name]) != _set_label(name, sb[name]):
                raise DataError(f"result {k}: set {name} is {_set_label(name, sa[name])} "
                                f"against {_set_label(name, sb[name])}")
            ia = {it["name"]: it["lip"] for it in sa[name]["items"]}
            ib = {it["name"]: it["lip"] for it in sb[name]["items"]}
            if set(ia) != set(ib):
                raise DataError(f"result {k}, set {name}: not the same clips")
            for clip, la in ia.items():
                lb = ib[clip]
                if la["n_bilabials"] != lb["n_bilabials"]:
                    raise DataError(f"result {k}, clip {clip}: {la['n_bilabials']} against "
                                    f"{lb['n_bilabials']} P/B/M (other seeds or phones)")
                tot["released"] += la["n_closed"]
                tot["candidate"] += lb["n_closed"]
                tot["eligible"] += la["n_bilabials"]
                tot["candidate_more"] += lb["n_closed"] > la["n_closed"]
                tot["released_more"] += la["n_closed"] > lb["n_closed"]
    n = tot["candidate_more"] + tot["released_more"]
    tot["p"] = float(binomtest(tot["candidate_more"], n, 0.5).pvalue) if n else 1.0
    return tot


def _checks_passed(results: list[dict]) -> tuple[int, int]:
    passed = total = 0
    for r in results:
        for s in result_sets(r).values():
            for c in s["checks"].values():
                total += 1
                passed += bool(c["pass"])
    return passed, total


def _openness(results: list[dict]) -> list[float]:
    return [s["overall"]["lip"]["openness_r"] for r in results for s in result_sets(r).values()]


def compare_to_released(released: list[dict], candidate: list[dict],
                        alpha: float = ALPHA, candidates: int = 1) -> dict:
    """Whether a candidate replaces the released network, by the module's rule.

    Args:
        released, candidate: ``streamtalker evaluate`` results, one per setting (best
            quality, live), same order, same sets; alpha: the sign test's family level;
            candidates: how many networks of one experiment are compared with the
            released network, this one among them, every checkpoint of a run counted (the
            test's level is ``alpha / candidates``).
    Returns:
        ``{"winner": "candidate" | "released", "by": "checks" | "closures" | "openness r"
        | "tie", "checks": (released passed, candidate passed, of), "closures":
        :func:`paired_closures`, "openness_r": (released list, candidate list)}``.
    Raises:
        DataError: as :func:`paired_closures`; SettingError: ``candidates`` < 1.
    """
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise SettingError(f"candidates must be a whole number >= 1, not {candidates!r}")
    (ra, n), (ca, _) = _checks_passed(released), _checks_passed(candidate)
    closures = paired_closures(released, candidate)
    r_rel, r_cand = _openness(released), _openness(candidate)
    out = {"checks": (ra, ca, n), "closures": closures, "openness_r": (r_rel, r_cand)}
    if ca != ra:
        return {**out, "winner": "candidate" if ca > ra else "released", "by": "checks"}
    if closures["p"] < alpha / candidates:
        better = closures["candidate_more"] > closures["released_more"]
        return {**out, "winner": "candidate" if better else "released", "by": "closures"}
    if all(math.isfinite(c) and math.isfinite(r) and c > r for c, r in zip(r_cand, r_rel)):
        return {**out, "winner": "candidate", "by": "openness r"}
    return {**out, "winner": "released", "by": "tie"}
