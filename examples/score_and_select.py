"""Score a LeRobot dataset with the shipped reward model and print the best episodes, through the library API
(the same calls `curate score` and `curate rank` make).

    .venv/bin/python examples/score_and_select.py data/demo "Open a drawer"
"""

import sys
from pathlib import Path

from curate.ranking import ranked
from curate.scoring import ScoreConfig, prepare, score_dataset


def main(dataset: str, instruction: str, index: Path = Path("example.duckdb")) -> None:
    summary = score_dataset(prepare(ScoreConfig(dataset=dataset, index=index, instructions=(instruction,))))
    print(f"scored {summary.scored} (already there: {summary.skipped}) with {summary.model}")
    rows, _, _ = ranked(index, instruction, [dataset], summary.model, top=5)
    for row in rows.itertuples():
        print(f"#{row.rank} episode {row.episode_index} ({row.task}): final progress {row.final_progress:.2f}, success {row.success_prob:.2f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
