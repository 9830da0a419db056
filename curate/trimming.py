"""`curate filter --trim`: the useful frames of an episode, from its per-frame scores under the instruction.

The span starts at the last scored frame before progress first rises (by more than RISE over the first scored frame's
progress) and ends at the first scored frame judged successful (success probability >= 0.5); `margin` frames are kept
on either side. An episode that never rises keeps its start; one never judged successful keeps its end. Scores exist
only at the scored frames (`curate score --frames N`), so more scored frames give tighter spans.
"""

from collections.abc import Sequence
RISE = 0.05  # progress above the first scored frame's that counts as the task having begun
SUCCESS = 0.5


def useful_span(frame_index: Sequence[int], progress: Sequence[float], success: Sequence[float], length: int, margin: int) -> tuple[int, int]:
    """Frames [start, end) of an episode of `length` frames worth keeping."""
    if len(frame_index) == 0:
        return 0, length
    start = 0
    risen = [i for i, p in enumerate(progress) if p > progress[0] + RISE]
    if risen and risen[0] > 0:
        start = max(0, int(frame_index[risen[0] - 1]) - margin)
    end = length
    done = [i for i, s in enumerate(success) if s >= SUCCESS]
    if done:
        end = min(length, int(frame_index[done[0]]) + 1 + margin)
    if end <= start:  # success judged before progress rose: the scores disagree, keep the whole episode
        return 0, length
    return start, end
