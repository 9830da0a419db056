# The two set-up commands of the README. Both create or refresh .venv (Python 3.12) and the system packages first.
.PHONY: setup demo test default-model

setup:
	bash scripts/setup.sh

# The main job on the embedded default: generate a small MetaWorld play dataset, score it with the shipped reward
# model (under each episode's own task and, across tasks, under "Open a drawer"), show the ranking, export the best
# drawer-opening episodes (at most 4 whose task fits the instruction with probability >= 0.85 and that succeeded with
# probability >= 0.5) as a LeRobot dataset and write an HTML report. Everything lands in data/demo*;
# tests/test_demo.py runs these same lines.
demo: setup
	.venv/bin/curate datagen metaworld --tasks drawer-open,button-press,reach,door-open --episodes-per-task 6 \
		--stride 4 --workers 2 --out data/demo --overwrite
	rm -f data/demo.duckdb
	.venv/bin/curate score data/demo --index data/demo.duckdb --instruction "Open a drawer"
	.venv/bin/curate rank --index data/demo.duckdb --top 5 --bottom 5
	.venv/bin/curate filter --index data/demo.duckdb --instruction "Open a drawer" --top-k 4 --min-match 0.85 \
		--min-success 0.5 --out data/demo_drawer_best --overwrite
	.venv/bin/curate report --index data/demo.duckdb --instruction "Open a drawer" --out data/demo_report.html

test: setup
	.venv/bin/python -m pytest -q

# Regenerates the shipped checkpoint (about 100 minutes of data generation and 75 of training on a 2-core CPU);
# see docs/rewardmodel.md.
default-model: setup
	bash scripts/train_default_model.sh
