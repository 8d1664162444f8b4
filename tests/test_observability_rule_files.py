"""The rule files in data/observability: valid for promtool, their unit tests pass in promtool and here."""

import pytest

from workbook.core.prometheus_server import promtool
from workbook.core.resources import data_path
from workbook.observability.rules import load_rules, run_promtool_tests

RULE_FILES = ["service_alerts.yml", "slo_rules.yml"]
TEST_FILES = ["service_alerts_test.yml", "slo_rules_test.yml"]


@pytest.mark.parametrize("name", RULE_FILES)
def test_rule_files_load_in_the_workbook(name):
    groups = load_rules(data_path("observability", name))
    assert groups and all(g.rules for g in groups)


@pytest.mark.prometheus
@pytest.mark.parametrize("name", RULE_FILES)
def test_promtool_checks_the_rule_files(name, promtool_binary):
    result = promtool("check", "rules", str(data_path("observability", name)))
    assert result.ok, result.output


@pytest.mark.prometheus
@pytest.mark.parametrize("name", TEST_FILES)
def test_promtool_unit_tests_pass(name, promtool_binary):
    path = data_path("observability", name)
    result = promtool("test", "rules", str(path), cwd=path.parent)
    assert result.ok and "SUCCESS" in result.output, result.output


@pytest.mark.parametrize("name", TEST_FILES)
def test_the_same_unit_tests_pass_with_the_workbook_evaluator(name):
    assert run_promtool_tests(data_path("observability", name)) == []


def test_the_workbook_runner_reports_a_wrong_expectation(tmp_path):
    src = data_path("observability", "service_alerts_test.yml").read_text()
    (tmp_path / "service_alerts.yml").write_text(data_path("observability", "service_alerts.yml").read_text())
    (tmp_path / "t.yml").write_text(src.replace("- eval_time: 28m", "- eval_time: 27m"))
    problems = run_promtool_tests(tmp_path / "t.yml")
    assert len(problems) == 1 and "HighErrorRatio at 27m" in problems[0]
