# The two set-up commands of the README. Both create or refresh .venv (Python 3.12) and the system packages first.
.PHONY: setup demo test

setup:
	bash scripts/setup.sh

# The main job on the embedded default: generate a small MetaWorld play dataset, then list its episodes.
demo: setup
	.venv/bin/curate datagen metaworld --tasks drawer-open,pick-place,button-press,reach --episodes-per-task 6 \
		--workers 2 --out data/demo --overwrite
	.venv/bin/curate info data/demo

test: setup
	.venv/bin/python -m pytest -q
