"""Bad input: the workbook refuses the rule files that ``promtool check rules`` (2.42) refuses, and names the place.

Each case is a rule file; promtool and ``load_rules`` must agree on accept / refuse.
Where the workbook is stricter on purpose it is listed in ``STRICTER`` with the reason.
"""

import pytest

from workbook.core.prometheus_server import promtool
from workbook.observability import RuleFileError, load_rules

pytestmark = pytest.mark.prometheus


def _alert(**fields):
    body = "".join(f"    {k}: {v}\n" for k, v in fields.items())
    return "groups:\n- name: g\n  rules:\n  - alert: A\n" + body


CASES = {
    "good": (_alert(expr="'rate(x_total[5m]) > 1'", **{"for": "5m"}), True),
    "good keep_firing_for": (_alert(expr="x > 1", keep_firing_for="10m"), True),
    "good regex and by": (_alert(expr="'sum by (route) (rate(x_total{code=~\"5..\"}[1m])) > 0'"), True),
    "good __ label": (_alert(expr="x > 1", labels="{__tenant: a}"), True),
    "unclosed paren": (_alert(expr="'rate(x[5m] > 1'"), False),
    "rate of an instant vector": (_alert(expr="'rate(x) > 1'"), False),
    "unknown function": (_alert(expr="'rates(x[5m]) > 1'"), False),
    "bad regex": (_alert(expr="'x{a=~\"(\"} > 1'"), False),
    "empty selector": (_alert(expr="'{a!=\"x\"} > 1'"), False),
    "scalar comparison without bool": (_alert(expr="'1 > 2'"), False),
    "duration with a space": (_alert(expr="x > 1", **{"for": "'5 m'"}), False),
    "duration without unit": (_alert(expr="x > 1", **{"for": "300"}), False),
    "label name with a dash": (_alert(expr="x > 1", labels="{team-name: a}"), False),
    "label name with a digit first": (_alert(expr="x > 1", labels="{2fast: a}"), False),
    "__name__ label": (_alert(expr="x > 1", labels="{__name__: a}"), False),
    "unknown rule field": (_alert(expr="x > 1", duration="5m"), False),
    "record name with a dash": ("groups:\n- name: g\n  rules:\n  - record: http-requests:rate5m\n"
                                "    expr: rate(x[5m])\n", False),
    "for on a recording rule": ("groups:\n- name: g\n  rules:\n  - record: x:rate5m\n    expr: rate(x[5m])\n"
                                "    for: 5m\n", False),
    "alert and record": ("groups:\n- name: g\n  rules:\n  - alert: A\n    record: x:y\n    expr: x > 1\n", False),
    "missing expr": ("groups:\n- name: g\n  rules:\n  - alert: A\n", False),
    "duplicate group": ("groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n", False),
    "unbalanced template": (_alert(expr="x > 1", annotations="{s: '{{ $labels.x '}"), False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_workbook_and_promtool_agree_on_what_is_valid(case, promtool_binary, tmp_path):
    text, valid = CASES[case]
    path = tmp_path / "rules.yml"
    path.write_text(text)
    result = promtool("check", "rules", str(path))
    assert result.ok == valid, result.output
    if valid:
        load_rules(text)
    else:
        with pytest.raises(RuleFileError) as info:
            load_rules(text)
        assert "groups[" in str(info.value)  # names the place


STRICTER = {
    # Prometheus accepts any Go template; the workbook refuses what it cannot expand
    # (if/range/with, queries) instead of showing a wrong annotation.
    "template control flow": (_alert(expr="x > 1", annotations="{s: '{{ if gt $value 1.0 }}big{{ end }}'}"), True),
    # promtool only parses; a range vector as the result fails at every evaluation
    "range vector result": (_alert(expr="'x[5m]'"), True),
}


@pytest.mark.parametrize("case", sorted(STRICTER))
def test_where_the_workbook_is_stricter_it_says_so(case, promtool_binary, tmp_path):
    text, promtool_valid = STRICTER[case]
    (tmp_path / "rules.yml").write_text(text)
    assert promtool("check", "rules", str(tmp_path / "rules.yml")).ok == promtool_valid
    with pytest.raises(RuleFileError, match="template this evaluator can expand|range vector cannot be the result"):
        load_rules(text)
