"""The eval harness on small files written here in the LoCoMo and LongMemEval formats."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from memagent import Memory
from memagent.eval import harness
from memagent.eval.longmemeval import load as load_longmemeval


def locomo_file(tmp_path):
    def session(n, date, turns):
        return {f"session_{n}_date_time": date,
                f"session_{n}": [{"speaker": s, "dia_id": f"D{n}:{i + 1}", "text": t}
                                 for i, (s, t) in enumerate(turns)]}

    conv = {"speaker_a": "Ann", "speaker_b": "Ben"}
    conv.update(session(1, "1:56 pm on 8 May, 2023", [
        ("Ann", "I adopted a beagle called Rex yesterday."), ("Ben", "Lovely! What colour is he?"),
        ("Ann", "Brown and white, with a black spot."), ("Ben", "I started pottery classes this week.")]))
    conv.update(session(2, "3:00 pm on 9 June, 2023", [
        ("Ben", "My pottery teacher is called Mrs Ito."), ("Ann", "Rex learned to sit last week."),
        ("Ben", "I am flying to Lisbon in July."), ("Ann", "Have a great trip!")]))
    qa = [
        {"question": "What is the name of Ann's dog?", "answer": "Rex", "evidence": ["D1:1"], "category": 4},
        {"question": "When did Ann adopt her dog?", "answer": "7 May 2023", "evidence": ["D1:1"], "category": 2},
        {"question": "What hobbies and trips does Ben have?", "answer": "pottery, Lisbon",
         "evidence": ["D1:4", "D2:3"], "category": 1},
        {"question": "Who teaches Ben pottery?", "answer": "Mrs Ito; a local potter", "evidence": ["D2:1"],
         "category": 3},
        {"question": "What is Ann's cat called?", "adversarial_answer": "Rex", "evidence": [], "category": 5},
    ]
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps([{"sample_id": "conv-a", "conversation": conv, "qa": qa}]))
    return path


def longmemeval_file(tmp_path):
    def item(qid, qtype, question, answer, sessions, answer_sessions):
        return {"question_id": qid, "question_type": qtype, "question": question, "answer": answer,
                "question_date": "2023/06/01 (Thu) 10:00",
                "haystack_session_ids": [s[0] for s in sessions],
                "haystack_dates": ["2023/05/20 (Sat) 02:21"] * len(sessions),
                "haystack_sessions": [s[1] for s in sessions], "answer_session_ids": answer_sessions}

    useful = ("s_a", [{"role": "user", "content": "My new car is a blue Toyota Corolla.", "has_answer": True},
                      {"role": "assistant", "content": "Congratulations on the new car!"}])
    noise = ("s_b", [{"role": "user", "content": "Can you suggest a pasta recipe?"},
                     {"role": "assistant", "content": "Try spaghetti aglio e olio."}])
    data = [item("q1", "single-session-user", "What car did I buy?", "a blue Toyota Corolla", [noise, useful], ["s_a"]),
            item("q2", "knowledge-update", "What colour is my car?", "blue", [useful, noise], ["s_a"]),
            item("q3_abs", "single-session-user", "What bike did I buy?", "not mentioned", [noise, useful], [])]
    path = tmp_path / "lme.json"
    path.write_text(json.dumps(data))
    return path


def test_locomo_run_writes_records_tables_and_plot(tmp_path, embedder):
    summary = harness.run_locomo(locomo_file(tmp_path), tmp_path / "run", embedder=embedder)
    table = summary["table"]
    assert list(table) == ["1 multi-hop", "2 temporal", "3 open-domain", "4 single-hop", "5 adversarial",
                           "overall 1-4", "overall 1-5"]
    assert table["4 single-hop"]["R@5"] == 1.0  # the dog question finds D1:1 among the first five
    assert table["2 temporal"]["R@1"] == 1.0
    assert table["5 adversarial"]["R@1"] is None and table["5 adversarial"]["BLEU-1"] is None
    assert table["5 adversarial"]["F1"] in (0.0, 1.0)  # abstained or not, scored as LoCoMo does
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 5 and records[0]["route"] in ("extraction", "abstraction", "generalization")
    assert records[0]["context_tokens"] > 0
    assert (tmp_path / "run" / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert "judge: none" in summary["report"] and "| 4 single-hop | 1 |" in summary["report"]


def test_interrupted_run_resumes_without_reingesting(tmp_path, embedder, monkeypatch):
    path, out = locomo_file(tmp_path), tmp_path / "run"
    base = harness.extractive_answer()
    asked = []

    def flaky(memory, user, question, now):
        if len(asked) == 2:
            raise KeyboardInterrupt
        asked.append(question)
        return base(memory, user, question, now)

    with pytest.raises(KeyboardInterrupt):
        harness.run_locomo(path, out, answer_fn=flaky, embedder=embedder)
    adds = []
    monkeypatch.setattr(Memory, "add", lambda self, *a, **k: adds.append(a))
    asked.clear()
    summary = harness.run_locomo(path, out, answer_fn=base, embedder=embedder)
    assert adds == []  # the conversation was not ingested again
    keys = [json.loads(line)["key"] for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 5 and summary["questions"] == 5


def test_longmemeval_loader_and_run(tmp_path, embedder):
    path = longmemeval_file(tmp_path)
    items = load_longmemeval(path)
    assert items[0].answer_turn_ids == ["s_a_1"] and items[2].abstention
    assert items[0].corpus_turn_ids == ["s_b_1", "s_b_2", "s_a_1", "s_a_2"]
    summary = harness.run_longmemeval(path, tmp_path / "run", embedder=embedder)
    assert summary["abstention_questions"] == 1
    assert summary["table"]["single-session-user"]["n_scored"] == 1  # the _abs question is skipped
    assert summary["retrieval"]["session@1"]["recall_any"] == 1.0
    assert "accuracy" not in summary["table"]["knowledge-update"]  # no judge, no accuracy figure
    assert "| retrieval | recall_any |" in summary["report"]


def test_longmemeval_answers_are_scored_without_a_judge(tmp_path, embedder):
    replies = {"What car did I buy?": ("I bought a blue Toyota Corolla last month", False),
               "What colour is my car?": ("No information available", True),
               "What bike did I buy?": ("No information available", True)}
    routed = harness.routed_answer()

    def answer(memory, user_id, question, now):
        text, abstained = replies[question]
        return replace(routed(memory, user_id, question, now), text=text, abstained=abstained)

    summary = harness.run_longmemeval(longmemeval_file(tmp_path), tmp_path / "run", embedder=embedder,
                                      answer_fn=answer)
    records = {r["key"]: r for r in map(json.loads, (tmp_path / "run" / "records.jsonl").read_text().splitlines())}
    assert records["q1"]["gold_recall"] == 1.0  # every gold token is in the longer answer
    assert 0.5 < records["q1"]["f1"] < 1.0  # ... which F1 charges for its extra words
    assert records["q2"]["f1"] == records["q2"]["gold_recall"] == 0.0
    assert "f1" not in records["q3_abs"]  # an abstention question has no gold span to score
    rules = summary["rules_scores"]
    assert rules["F1"] == pytest.approx(records["q1"]["f1"] / 2)
    assert rules["false abstention"] == 0.5 and rules["abstention"] == 1.0
    assert summary["table"]["knowledge-update"]["false abstention"] == 1.0
    assert summary["table"]["single-session-user"]["abstention"] == 1.0
    assert "answers scored without a judge: token F1" in summary["report"]


@pytest.mark.slow
def test_judges_use_the_chat_model_and_report_its_name(tmp_path, embedder):
    replies = iter([AIMessage(content='```json\n{"label": "CORRECT"}\n```'), AIMessage(content='{"label": "WRONG"}'),
                    AIMessage(content="CORRECT, I think")])
    model = GenericFakeChatModel(messages=replies)
    summary = harness.run_locomo(locomo_file(tmp_path), tmp_path / "run", limit=3, embedder=embedder, judge=model)
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert [r["judge"] for r in records] == [True, False, None]  # unreadable output: unjudged, not guessed
    assert summary["judge_model"] == "GenericFakeChatModel" and "judge: GenericFakeChatModel" in summary["report"]
    lme = GenericFakeChatModel(messages=iter([AIMessage(content="Yes."), AIMessage(content="no")] * 3))
    result = harness.run_longmemeval(longmemeval_file(tmp_path), tmp_path / "lme", embedder=embedder, judge=lme)
    assert result["overall_accuracy"] is not None and 0.0 <= result["overall_accuracy"] <= 1.0


def test_reports_say_which_path_answered_and_why_a_chat_model_was_overruled(tmp_path, embedder):
    from fakes import scripted

    def respond(messages):
        system = str(messages[0].content)
        if "extract durable facts" in system or "sort questions" in system:
            return "{}"  # no statements; an invalid route: the rules decide
        return "Not mentioned in memory." if "Question: When" in str(messages[-1].content) else "Rex."

    summary = harness.run_locomo(locomo_file(tmp_path), tmp_path / "run", limit=4, embedder=embedder,
                                 llm=scripted(respond))
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    by_question = {r["question"]: r for r in records}
    adopted = by_question["When did Ann adopt her dog?"]
    assert adopted["path"] == "rules" and "overruled: abstained despite evidence" in adopted["reason"]
    assert "7 May 2023" in adopted["text"]
    named = by_question["What is the name of Ann's dog?"]
    assert named["path"] == "llm" and named["text"] == "Rex."
    assert summary["cost"]["llm_overruled"]["abstained despite evidence"] >= 1
    assert "overruled by the LLM-free path: abstained despite evidence" in summary["report"]
