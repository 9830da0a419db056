"""`curate report`: one self-contained HTML page: score histograms per task, the best and worst episodes' progress
curves with frame thumbnails, and a table of every episode."""

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from curate import lerobot_io, provenance
from curate.errors import CurateError
from curate.index import Index
from curate.outputs import STAMP, check_apart, write_file
from curate.plots import png_bytes, progress_curve, score_histograms
from curate.ranking import match_text, ranked

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.episode { display: flex; gap: 1em; align-items: center; margin: 0.6em 0; }
.thumbs img { width: 64px; height: 64px; margin-right: 2px; image-rendering: pixelated; }
"""
# Marks the page once every image has loaded, so a headless browser test can check what was really rendered.
SCRIPT = """
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesTotal = images.length;
});
"""


def _png(fig_or_array) -> str:
    if isinstance(fig_or_array, np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(fig_or_array).save(buffer, format="PNG")
        data = buffer.getvalue()
    else:
        data = png_bytes(fig_or_array)
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _histograms(rows: pd.DataFrame) -> str:
    return _png(score_histograms(rows))


def _curve(row) -> str:
    return _png(progress_curve(row.frame_index, row.frame_progress))


def _thumbnails(rows: pd.DataFrame, camera: str | None) -> dict[tuple[str, int], list[str]]:
    """Thumbnails of the scored frames of each row's episode (one decode call per dataset)."""
    thumbs: dict[tuple[str, int], list[str]] = {}
    for dataset, group in rows.groupby("dataset"):
        try:
            ds = lerobot_io.open_dataset(dataset)
            key = lerobot_io.resolve_camera(ds, camera)
            requests = [(int(r.episode_index), list(r.frame_index)) for r in group.itertuples()]
            decoded = lerobot_io.decode_frames(ds, requests, [key])
        except CurateError:
            continue  # a moved or broken dataset: the report still shows scores and curves
        for (episode, _), frames in zip(requests, decoded, strict=True):
            thumbs[(dataset, episode)] = [_png(np.asarray(Image.fromarray(f).resize((64, 64)))) for f in frames[key]]
    return thumbs


def _match_text(row) -> str:
    text = match_text(row.match_prob)
    return f"match {text}, " if text else ""


def _camera_texts(index_path: Path, instruction: str | None, datasets: Sequence[str], model: str) -> dict[tuple[str, int, str], str]:
    """Per (dataset, episode, instruction) scored with several cameras, what each said: `front 0.91 / wrist 0.40`
    (final progress; the row's own numbers are their frame-by-frame maximum)."""
    with Index(index_path, read_only=True) as index:
        rows = index.camera_scores(instruction, [str(Path(d).expanduser().resolve()) for d in datasets], model)
    texts: dict[tuple[str, int, str], list[str]] = {}
    for r in rows.itertuples():
        texts.setdefault((r.dataset, int(r.episode_index), r.instruction), []).append(f"{r.camera.removeprefix('observation.images.')} {r.final_progress:.2f}")
    return {key: " / ".join(parts) for key, parts in texts.items()}


def _episode_block(row, curve: str, thumbs: list[str], cameras: str) -> str:
    images = "".join(f'<img alt="frame {i}" src="{src}">' for i, src in zip(row.frame_index, thumbs, strict=False))
    by_camera = f"<br>by camera: {html.escape(cameras)}" if cameras else ""
    return (
        f'<div class="episode"><div><b>#{row.rank}</b> {html.escape(Path(row.dataset).name)} episode {row.episode_index}<br>'
        f"{html.escape(row.task)}<br>{_match_text(row)}final progress {row.final_progress:.3f}, success {row.success_prob:.3f}{by_camera}</div>"
        f'<img alt="progress curve of episode {row.episode_index}" src="{curve}"><div class="thumbs">{images}</div></div>'
    )


def build_report(
    index_path: Path, out: Path, instructions: Sequence[str] = (), datasets: Sequence[str] = (), model: str | None = None,
    camera: str | None = None, show: int = 5,
) -> Path:
    """Write the HTML report for each instruction (or each episode's own task when none is given)."""
    if show < 1:
        raise CurateError(f"--show must be at least 1, got {show}")
    check_apart(out, [index_path, *datasets])  # before minutes of work
    sections = []
    model_id = ""
    for instruction in list(instructions) or [None]:
        rows, model_id, _ = ranked(index_path, instruction, datasets, model)
        if rows.empty:
            raise CurateError("no scored episodes to report; run `curate score` first")
        extremes = pd.concat([rows.head(show), rows.tail(show)]).drop_duplicates("rank")
        thumbs = _thumbnails(extremes, camera)
        cameras = _camera_texts(index_path, instruction, datasets, model_id)
        said = lambda r: cameras.get((r.dataset, int(r.episode_index), r.instruction), "")  # noqa: E731
        blocks = {
            r.rank: _episode_block(r, _curve(r), thumbs.get((r.dataset, int(r.episode_index)), []), said(r)) for r in extremes.itertuples()
        }
        top = "".join(blocks[r] for r in rows.head(show)["rank"])
        bottom = "".join(blocks[r] for r in rows.tail(show)["rank"])
        table_rows = "".join(
            f"<tr><td class=num>{r.rank}</td><td>{html.escape(Path(r.dataset).name)}</td><td class=num>{r.episode_index}</td>"
            f"<td>{html.escape(r.task)}</td><td class=num>{match_text(r.match_prob)}</td>"
            f"<td class=num>{r.final_progress:.3f}</td><td class=num>{r.mean_progress:.3f}</td>"
            f"<td class=num>{r.success_prob:.3f}</td>" + (f"<td>{html.escape(said(r))}</td>" if cameras else "") + "</tr>"
            for r in rows.itertuples()
        )
        title = f"under {html.escape(repr(instruction))}" if instruction else "under each episode's own task"
        sections.append(
            f'<section><h2>{len(rows)} episodes {title}</h2>'
            f'<h3>Final progress by task</h3><img alt="histograms" src="{_histograms(rows)}">'
            f"<h3>Best {min(show, len(rows))}</h3>{top}<h3>Worst {min(show, len(rows))}</h3>{bottom}"
            f'<h3>All episodes</h3><table class="episodes"><tr><th>rank</th><th>dataset</th><th>episode</th><th>task</th><th>match</th>'
            f"<th>final progress</th><th>mean progress</th><th>success prob</th>{'<th>final progress by camera</th>' if cameras else ''}</tr>{table_rows}</table></section>"
        )
    page = (
        f"<!doctype html><!-- {STAMP} --><html><head><meta charset='utf-8'><title>curate report</title><style>{STYLE}</style>"
        f"<script>{SCRIPT}</script></head><body><h1>curate report</h1>"
        f"<p>index {html.escape(str(Path(index_path).resolve()))}, model {html.escape(model_id)}, made {provenance.now()} by curate {provenance.code_version()}</p>"
        f"{''.join(sections)}</body></html>"
    )
    return write_file(out, page, inputs=[index_path, *datasets])
