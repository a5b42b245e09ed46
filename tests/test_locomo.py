"""LoCoMo loading, evidence cleaning and recall@k, on a small file written here."""

from __future__ import annotations

import json

import pytest

from memagent.eval.locomo import CATEGORIES, clean_evidence, load
from memagent.eval.metrics import recall_at_k
from memagent.extraction import IMAGE_CAPTION


def test_category_names_follow_the_dataset_ids():
    assert CATEGORIES == {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


def test_clean_evidence_rules():
    known = {"D8:6", "D9:17", "D11:26", "D30:5"}
    assert clean_evidence(["D8:6; D9:17"], known) == ["D8:6", "D9:17"]  # one string, two ids
    assert clean_evidence(["D:11:26"], known) == ["D11:26"]             # stray colon
    assert clean_evidence(["D30:05"], known) == ["D30:5"]               # zero padding
    assert clean_evidence(["D", "D99:1"], known) == []                  # names no turn


def test_recall_at_k_counts_distinct_ids():
    assert recall_at_k(["a", "a", "b"], ["b"], 1) == 0.0
    assert recall_at_k(["a", "a", "b"], ["b"], 2) == 1.0
    assert recall_at_k(["a", "b", "c"], ["a", "c", "z"], 3) == pytest.approx(2 / 3)


def test_load_small_file(tmp_path):
    data = [{
        "sample_id": "conv-x",
        "conversation": {
            "speaker_a": "Ann", "speaker_b": "Ben",
            "session_2_date_time": "3:00 pm on 9 June, 2023",
            "session_2": [{"speaker": "Ben", "dia_id": "D2:1", "text": "Back from Rome!"}],
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": "Ann", "dia_id": "D1:1", "text": "Look", "blip_caption": "a red bike"},
                          {"speaker": "Ben", "dia_id": "D1:2", "text": "Nice bike"}],
        },
        "qa": [{"question": "Where did Ben go?", "answer": "Rome", "evidence": ["D2:01", "D7:7"], "category": 4},
               {"question": "What colour?", "adversarial_answer": "red", "evidence": [], "category": 5}],
    }]
    path = tmp_path / "small.json"
    path.write_text(json.dumps(data))
    conv, = load(path)
    assert [s.session_id for s in conv.sessions] == ["session_1", "session_2"]
    look, nice = conv.sessions[0].turns
    assert look["text"] == "Look" and look["metadata"] == {"dia_id": "D1:1", IMAGE_CAPTION: "a red bike"}
    assert nice["metadata"] == {"dia_id": "D1:2"}
    assert conv.questions[0].evidence == ["D2:1"]
    assert conv.questions[1].answer == "red"
    assert conv.reference_time.date().isoformat() == "2023-06-10"


@pytest.mark.parametrize("content", ["not json", "{}", '[{"qa": []}]'])
def test_malformed_files_get_a_clear_error(tmp_path, content):
    from memagent.errors import InvalidInputError
    from memagent.eval.longmemeval import load as load_longmemeval

    path = tmp_path / "bad.json"
    path.write_text(content)
    for loader in (load, load_longmemeval):
        with pytest.raises(InvalidInputError):
            loader(path)
