// Cron Gateway UI: small progressive enhancements. Every action also works without this file.
"use strict";

(function () {
  // Live updates: re-fetch this page and swap the regions marked data-live, every few seconds.
  function startPolling() {
    const main = document.getElementById("main");
    if (!main || !main.dataset.poll) return;
    const every = Math.max(500, parseInt(main.dataset.poll, 10) || 2000);
    let busy = false;
    async function poll() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const response = await fetch(window.location.href, {
          credentials: "same-origin",
          headers: { "X-Live": "1" },
        });
        if (!response.ok || response.redirected) return;
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          const next = fresh.querySelector('[data-live="' + old.dataset.live + '"]');
          if (next && !old.contains(document.activeElement) && old.innerHTML !== next.innerHTML) {
            old.replaceWith(document.importNode(next, true));
          }
        });
        const freshMain = fresh.getElementById("main");
        if (freshMain && !freshMain.dataset.poll) {
          window.clearInterval(timer); // e.g. a run that has finished: nothing more will change
        }
      } catch (e) {
        // The server restarted or the network blinked: try again on the next tick.
      } finally {
        busy = false;
      }
    }
    const timer = window.setInterval(poll, every);
  }

  // Live validation and preview of a schedule as it is typed (the server says what it means).
  function schedulePreview() {
    const form = document.querySelector("form[data-preview]");
    if (!form) return;
    const expr = form.querySelector("[data-schedule]");
    const tz = form.querySelector("[data-tz]");
    const out = document.getElementById("schedule-preview");
    let pending = null;
    let seq = 0;
    async function check() {
      const mine = ++seq;
      const params = new URLSearchParams({ expr: expr.value, tz: tz.value, name: form.dataset.name });
      try {
        const response = await fetch(form.dataset.preview + "?" + params, { credentials: "same-origin" });
        const body = await response.json();
        if (mine !== seq) return; // a newer keystroke already asked
        render(body);
      } catch (e) {
        out.textContent = "";
      }
    }
    function render(body) {
      out.replaceChildren();
      out.classList.toggle("bad", !body.ok);
      expr.setAttribute("aria-invalid", body.ok || body.field === "tz" ? "false" : "true");
      tz.setAttribute("aria-invalid", !body.ok && body.field === "tz" ? "true" : "false");
      if (!body.ok) {
        out.textContent = body.error;
        return;
      }
      const words = document.createElement("div");
      words.textContent = body.description;
      out.append(words);
      if (body.times.length) {
        const list = document.createElement("ol");
        body.times.forEach(function (t) {
          const item = document.createElement("li");
          item.textContent = t.at.replace("T", " ") + (t.note ? " — " + t.note : "");
          list.append(item);
        });
        out.append(list);
      }
    }
    function later() {
      window.clearTimeout(pending);
      pending = window.setTimeout(check, 200);
    }
    expr.addEventListener("input", later);
    tz.addEventListener("input", later);
    // A schedule the server already called invalid is not sent: say so where the eye is.
    form.addEventListener("submit", function (event) {
      const bad = form.querySelector('[aria-invalid="true"]');
      if (bad) {
        event.preventDefault();
        bad.focus();
        out.classList.add("bad");
      }
    });
  }

  // JSON text areas: say at once whether the text is valid JSON.
  function jsonHints() {
    document.querySelectorAll("textarea[data-json]").forEach(function (area) {
      const hint = area.parentElement.querySelector("[data-json-hint]");
      area.addEventListener("input", function () {
        let problem = "";
        if (area.value.trim()) {
          try { JSON.parse(area.value); } catch (e) { problem = "Not valid JSON: " + e.message; }
        }
        area.setAttribute("aria-invalid", problem ? "true" : "false");
        if (hint) {
          hint.textContent = problem || (area.value.trim() ? "Valid JSON" : "");
          hint.classList.toggle("bad", Boolean(problem));
        }
      });
    });
  }

  // Forms that destroy something ask first (without JS they just submit).
  function confirmations() {
    document.addEventListener("submit", function (event) {
      const form = event.target;
      if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
    document.querySelectorAll("[data-select]").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    startPolling();
    schedulePreview();
    jsonHints();
    confirmations();
  });
})();
