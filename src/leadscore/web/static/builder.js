// The rule builder on the model page: field pickers follow the kind of rule, engagement fields show only
// for engagement rules, and a problem's "line N" puts the editor's cursor on that line.
(function () {
  "use strict";

  function sync(root) {
    const section = root.querySelector("#b-section");
    if (!section) return;
    const fit = section.value === "fit";
    for (const input of root.querySelectorAll(".b-field")) {
      input.setAttribute("list", fit ? "b-attributes" : "b-properties");
    }
    const engagement = root.querySelector(".b-engagement");
    if (engagement) engagement.hidden = fit;
  }

  function toLine(link) {
    const editor = document.getElementById("draft");
    if (!editor) return;
    const line = Number(link.dataset.line), column = Number(link.dataset.column || 1);
    const lines = editor.value.split("\n");
    let at = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) at += lines[i].length + 1;
    const end = at + (lines[line - 1] || "").length;
    editor.focus();
    editor.setSelectionRange(Math.min(at + column - 1, end), end);
    // scroll the line into view: the editor's line height times the lines above it
    const height = parseFloat(getComputedStyle(editor).lineHeight) || 18;
    editor.scrollTop = Math.max(0, (line - 3) * height);
  }

  document.addEventListener("DOMContentLoaded", () => sync(document));
  document.addEventListener("change", (e) => {
    if (e.target && e.target.id === "b-section") sync(document);
  });
  document.addEventListener("click", (e) => {
    const link = e.target.closest && e.target.closest("a.to-line");
    if (!link) return;
    e.preventDefault();
    toLine(link);
  });
})();
