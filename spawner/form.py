"""The spawn form both spawners show, and the form data -> user_options mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from .projects import Project
from .resources import format_cpus, format_memory
from .templates import Template

_STYLE = """
<style>
  .lavahub-templates { display: grid; gap: .5em; margin: .5em 0 1em; }
  .lavahub-template { border: 1px solid #ccc; border-radius: 4px; padding: .6em .8em; cursor: pointer; }
  .lavahub-template input { margin-right: .5em; }
  .lavahub-template small { color: #555; display: block; margin-left: 1.6em; }
  .lavahub-resources { display: flex; gap: 1em; flex-wrap: wrap; }
  .lavahub-resources label { display: flex; flex-direction: column; font-weight: normal; }
</style>
"""

_SCRIPT = """
<script>
(function () {
  var project = document.getElementById("lavahub-project");
  var resources = document.querySelector(".lavahub-resources");
  // the template the pre-filled values were asked for (the last start's): another one starts
  // from its own defaults, or a value above its maxima would have the start refused
  var filledFor = resources.dataset.filledFor;
  function sync() {
    var first = null, checkedVisible = false;
    document.querySelectorAll(".lavahub-template").forEach(function (card) {
      var allowed = JSON.parse(card.dataset.projects);
      var show = allowed.length === 0 || allowed.indexOf(project.value) >= 0;
      card.hidden = !show;
      var radio = card.querySelector("input");
      radio.disabled = !show;
      if (show && !first) { first = radio; }
      if (show && radio.checked) { checkedVisible = true; }
    });
    if (!checkedVisible && first) { first.checked = true; }
    var chosen = document.querySelector(".lavahub-template input:checked");
    if (chosen) {
      var d = chosen.closest(".lavahub-template").dataset;
      var other = chosen.value !== filledFor;
      filledFor = chosen.value;
      ["gpus", "cpus", "memory"].forEach(function (key) {
        var input = document.getElementById("lavahub-" + key);
        if (other) { input.value = ""; }
        input.placeholder = d[key];
        if (key !== "memory") { input.max = d["max" + key]; }
      });
    }
  }
  project.addEventListener("change", sync);
  document.querySelectorAll(".lavahub-template input").forEach(function (radio) {
    radio.addEventListener("change", sync);
  });
  sync();
})();
</script>
"""


def render_form(
    templates: Sequence[Template],
    projects: Mapping[str, Project],
    previous: Mapping[str, Any] | None = None,
) -> str:
    """HTML for the hub's spawn page: pick a project, a template, and resources.

    Only enabled templates allowed in at least one of the user's projects are offered.
    """
    previous = previous or {}
    names = sorted(projects)
    offered = [
        t for t in templates
        if t.enabled and any(t.allows_project(p) for p in names)
    ]  # fmt: skip
    if not names:
        return "<p>You are not a member of any project yet. Ask an admin to add you to one.</p>"
    if not offered:
        return "<p>No template is available to your projects. Ask an admin to allow one.</p>"
    chosen_project = previous.get("project") if previous.get("project") in projects else names[0]
    chosen_template = (
        previous.get("template") if any(t.slug == previous.get("template") for t in offered) else None
    )

    project_options = "".join(
        f'<option value="{escape(n)}"{" selected" if n == chosen_project else ""}>{escape(n)}</option>'
        for n in names
    )
    cards = []
    for t in offered:
        checked = " checked" if t.slug == chosen_template else ""
        limits = (
            f"{format_cpus(t.cpus)} CPU (max {format_cpus(t.max_cpus)}), "
            f"{format_memory(t.memory)} (max {format_memory(t.max_memory)}), "
            f"{t.gpus} GPU (max {t.max_gpus})"
        )
        cards.append(
            f'<label class="lavahub-template" data-projects="{escape(json.dumps(list(t.projects)))}" '
            f'data-gpus="{t.gpus}" data-maxgpus="{t.max_gpus}" data-cpus="{format_cpus(t.cpus)}" '
            f'data-maxcpus="{format_cpus(t.max_cpus)}" data-memory="{format_memory(t.memory)}">'
            f'<input type="radio" name="template" value="{escape(t.slug)}"{checked}>'
            f"<strong>{escape(t.display_name)}</strong>"
            f"<small>{escape(t.description)}</small><small>{escape(limits)}</small></label>"
        )
    return (
        _STYLE
        + '<label for="lavahub-project">Project</label>'
        + f'<select class="form-control" id="lavahub-project" name="project">{project_options}</select>'
        + '<p style="margin-top:1em"><strong>Template</strong></p>'
        + f'<div class="lavahub-templates">{"".join(cards)}</div>'
        + f'<div class="lavahub-resources" data-filled-for="{escape(chosen_template or "")}">'
        + _number_input("gpus", "GPUs", previous, step="1")
        + _number_input("cpus", "CPUs", previous, step="0.5")
        + '<label>Memory<input class="form-control" id="lavahub-memory" name="memory" '
        + f'value="{escape(str(previous.get("memory", "")))}"></label>'
        + "</div>"
        + _SCRIPT
    )


def _number_input(key: str, label: str, previous: Mapping[str, Any], step: str) -> str:
    value = escape(str(previous.get(key, "")))
    return (
        f'<label>{label}<input class="form-control" type="number" min="0" step="{step}" '
        f'id="lavahub-{key}" name="{key}" value="{value}"></label>'
    )


def options_from_form(formdata: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Form fields -> user_options; empty fields are left out so defaults apply."""
    options = {}
    for key in ("project", "template", "gpus", "cpus", "memory", "gpu_type"):
        value = (formdata.get(key) or [""])[0].strip()
        if value:
            options[key] = value
    return options
