"""The README's DAG is the example DAG's marked region, so the two cannot drift apart (the
Sphinx pages include the same region with literalinclude)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_dag_is_the_example_dag_region() -> None:
    example = (ROOT / "example_dags" / "example_conpeek_daily_extract.py").read_text()
    region = example.split("# [START howto_conpeek_daily_extract]\n", 1)[1]
    region = region.split("# [END howto_conpeek_daily_extract]", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert region in blocks


def test_readme_opens_with_a_dag_that_runs_as_copied() -> None:
    """The README's first code block is a whole DAG file: its imports and every name."""
    first = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0]
    namespace: dict[str, object] = {"__name__": "readme_dag"}
    exec(compile(first, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    dag = namespace["dag"]
    assert dag.dag_id == "example_conpeek_daily_extract"  # type: ignore[attr-defined]
    assert sorted(dag.task_ids) == [  # type: ignore[attr-defined]
        "extract_voice_campaign_request_summary",
        "wait_for_voice_campaign_records",
    ]


def test_docs_include_the_example_dag_rather_than_paste_it() -> None:
    pages = "".join(p.read_text() for p in (ROOT / "docs").glob("*.rst"))
    assert ":start-after: [START howto_conpeek_daily_extract]" in pages
    assert "VoiceCampaignSummaryToS3Operator(\n        task_id=" not in pages
