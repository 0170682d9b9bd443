// distill review: one page, keyboard first. Teacher output is untrusted: everything it wrote becomes
// text nodes (textContent, input values), never HTML; links are made only for http(s) URLs.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  // el("div", {class: "x"}, "text", child...): strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ---- safe Markdown: paragraphs, headings, lists, quotes, fenced code, `code`, **bold**, *italic*, [links](https://)
  function safeUrl(raw) {
    try {
      const url = new URL(raw);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  const INLINE = /(`+)([^`][\s\S]*?)\1|\*\*([^*\n][\s\S]*?)\*\*|\*([^*\s][^*\n]*?)\*|\[([^\]\n]+)\]\(([^()\s]+)\)/g;

  function inline(text) {
    const out = [];
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
      if (m[2] !== undefined) out.push(el("code", {}, m[2]));
      else if (m[3] !== undefined) out.push(el("strong", {}, ...inline(m[3])));
      else if (m[4] !== undefined) out.push(el("em", {}, ...inline(m[4])));
      else {
        const href = safeUrl(m[6]);
        if (href) out.push(el("a", {href, target: "_blank", rel: "noopener noreferrer nofollow"}, m[5]));
        else out.push(document.createTextNode(m[0])); // javascript:, data:, relative: shown as the text it is
      }
      last = m.index + m[0].length;
    }
    if (last < text.length) out.push(document.createTextNode(text.slice(last)));
    return out;
  }

  function markdown(text) {
    const root = document.createDocumentFragment();
    const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
    let para = [];
    let list = null;
    const flushPara = () => {
      if (para.length) root.append(el("p", {}, ...inline(para.join("\n"))));
      para = [];
    };
    const flushList = () => {
      if (list) root.append(list);
      list = null;
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = line.match(/^\s*(```|~~~)(.*)$/);
      if (fence) {
        flushPara(); flushList();
        const body = [];
        for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) body.push(lines[i]);
        root.append(el("pre", {}, el("code", {}, body.join("\n"))));
        continue;
      }
      const heading = line.match(/^(#{1,6})\s+(.*)$/);
      const bullet = line.match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
      if (heading) {
        flushPara(); flushList();
        root.append(el("h" + Math.min(6, heading[1].length + 3), {}, ...inline(heading[2])));
      } else if (bullet) {
        flushPara();
        const tag = /\d/.test(bullet[1]) ? "ol" : "ul";
        if (!list || list.tagName.toLowerCase() !== tag) { flushList(); list = el(tag, {}); }
        list.append(el("li", {}, ...inline(bullet[2])));
      } else if (/^\s*>/.test(line)) {
        flushPara(); flushList();
        root.append(el("blockquote", {}, ...inline(line.replace(/^\s*>\s?/, ""))));
      } else if (!line.trim()) {
        flushPara(); flushList();
      } else {
        flushList();
        para.push(line);
      }
    }
    flushPara(); flushList();
    return root;
  }

  // ---- the API: reads, and writes that are queued, retried and never lost
  async function get(path) {
    const response = await fetch(path, {credentials: "same-origin", cache: "no-store"});
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return response.json();
  }

  async function post(path, body) {
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch(path, {method: "POST", credentials: "same-origin",
          headers: {"Content-Type": "application/json", "X-Distill": "1"}, body: JSON.stringify(body)});
      } catch (err) { // the server is away: try again; the client_id makes a retry land once
        toast(`not saved yet (${err.message}); retrying…`, true);
        await new Promise((r) => setTimeout(r, Math.min(8000, 250 * 2 ** attempt)));
        continue;
      }
      const data = await response.json().catch(() => ({}));
      if (response.ok) return data;
      // A 5xx without the server's own message (a proxy, a restart): try again. With one, the server
      // is telling the reviewer something (the disk is full, the run is locked): show it, no retry.
      if (response.status >= 500 && !data.error) {
        await new Promise((r) => setTimeout(r, Math.min(8000, 250 * 2 ** attempt)));
        continue;
      }
      const err = new Error(data.error || `${response.status}`);
      err.status = response.status;
      throw err;
    }
  }

  let writes = Promise.resolve();
  let writing = 0;
  function write(path, body) { // in order: an undo never overtakes the decision it takes back
    writing++;
    const done = writes.then(() => post(path, body)).finally(() => { writing--; scheduleRefresh(); });
    writes = done.catch((err) => {
      const item = body.item_id ? `${body.item_id}: ` : "";
      // A 5xx message says itself that nothing was saved and what to do; a 4xx says what was wrong.
      toast(err.status >= 500 ? `${item}${err.message}` : `not saved: ${item}${err.message}`, true);
    });
    return done;
  }

  const uuid = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`);

  // ---- state
  let hello = null;
  let overview = null;
  let view = [];
  let index = 0;
  let target = null; // the id the reviewer asked to see last
  let mode = "view"; // view | reason | edit | help
  let shownAt = performance.now();
  const cards = new Map();
  const loading = new Map();
  const chosen = new Set();
  window.distillTimings = [];

  function toast(text, sticky) {
    const node = $("toast");
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { node.hidden = true; }, sticky ? 8000 : 2500);
  }

  function fetchCard(id) {
    if (cards.has(id)) return Promise.resolve(cards.get(id));
    if (!loading.has(id)) {
      loading.set(id, get(`/api/item/${encodeURIComponent(id)}`)
        .then((card) => { cards.set(id, card); return card; })
        .finally(() => loading.delete(id)));
    }
    return loading.get(id);
  }

  function filtered() {
    const leaf = $("filter-leaf").value;
    const verdict = $("filter-verdict").value;
    const reason = $("filter-reason").value;
    return overview.items.filter((item) => {
      if (leaf && item.leaf !== leaf && !item.leaf.startsWith(leaf + "/")) return false;
      if (verdict === "todo" && !item.todo) return false;
      if (verdict === "skip" && item.mine !== "skip") return false;
      if (verdict && verdict !== "todo" && verdict !== "skip" && item.outcome !== verdict) return false;
      if (reason && !item.reasons.includes(reason)) return false;
      return true;
    });
  }

  function nextTodo(from) {
    for (let j = from + 1; j < view.length; j++) if (view[j].todo && !view[j].claimed) return j;
    for (let j = 0; j <= from && j < view.length; j++) if (view[j].todo && !view[j].claimed) return j;
    return -1;
  }

  function preload() {
    let j = index;
    for (let k = 0; k < 3; k++) {
      j = nextTodo(j);
      if (j < 0) break;
      fetchCard(view[j].id).catch(() => {});
    }
    if (index + 1 < view.length) fetchCard(view[index + 1].id).catch(() => {});
  }

  async function show(i, t0) {
    if (!view.length) {
      $("card").replaceChildren(el("p", {class: "empty"}, overview.progress.todo
        ? "Nothing matches these filters." : "Nothing left for you to review here. Thank you!"));
      $("side").replaceChildren(leavesPanel());
      sizeBars();
      document.body.dataset.cardId = "";
      return;
    }
    index = Math.max(0, Math.min(i, view.length - 1));
    const id = view[index].id;
    target = id;
    const cached = cards.has(id);
    const card = cached ? cards.get(id) : await fetchCard(id);
    if (target !== id) return; // the reviewer moved on meanwhile
    index = Math.max(0, view.findIndex((item) => item.id === id)); // a refresh may have replaced the list
    render(card);
    shownAt = performance.now();
    if (t0 !== undefined) {
      const layout = performance.now() - t0;
      requestAnimationFrame(() => window.distillTimings.push({id, cached, layout, frame: performance.now() - t0}));
    }
    preload();
  }

  // ---- rendering
  const VERDICT_WORDS = {accept: "accepted", reject: "rejected", edit: "edited", skip: "skipped"};

  function reasonLabel(code) {
    const found = hello.reasons.find((r) => r.code === code);
    return found ? found.label : code;
  }

  // A conversation (issue 21): more than one answer, or tool turns. Its turns are numbered, each can be edited
  // or rejected alone, and its tool calls, tool results and the teacher's reasoning are laid out as such.
  function isConversation(card) {
    return card.messages.filter((m) => m.role === "assistant").length > 1 || card.messages.some((m) => m.role === "tool");
  }

  // A tool's result as indented JSON where it is JSON, else the text as the tool gave it.
  function pretty(text) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) {
      return text;
    }
  }

  // Arguments come as a JSON object; a string is what the teacher wrote when it was not one (records.py), shown as
  // written so the reviewer sees what was wrong.
  function toolCall(call) {
    const args = call.function.arguments;
    const written = typeof args === "string";
    return el("div", {class: "tool-call"},
      el("div", {class: "tool-call-head"}, "calls ", el("code", {class: "tool-name"}, call.function.name),
        call.id ? el("span", {class: "call-id"}, ` ${call.id}`) : null,
        written ? el("span", {class: "bad-json"}, " (arguments not a JSON object: as the teacher wrote them)") : null),
      el("pre", {class: "tool-args"}, written ? args : JSON.stringify(args, null, 2)));
  }

  function reasoning(m) {
    return el("details", {class: "reasoning"},
      el("summary", {}, `teacher's reasoning · ${m.reasoning.length} characters`),
      el("div", {class: "reasoning-text"}, m.reasoning));
  }

  function toolResult(m) {
    return el("details", {class: "tool-result"},
      el("summary", {}, `result of ${m.name || "a tool"}`, m.tool_call_id ? ` (${m.tool_call_id})` : "",
        ` · ${m.content.length} characters`),
      el("pre", {class: "tool-output"}, pretty(m.content)));
  }

  // editable: true (every turn but the system prompt), a turn's index (that turn alone), or false.
  function message(m, editable, i, numbered) {
    const open = editable === true ? m.role !== "system" : editable === i;
    const parts = [];
    if (m.reasoning) parts.push(reasoning(m));
    if (open) {
      const area = el("textarea", {class: "edit", "data-role": m.role, "data-index": i,
        rows: Math.min(18, Math.max(3, m.content.split("\n").length + 1))});
      area.value = m.content;
      parts.push(area);
    } else if (m.role === "tool") {
      parts.push(toolResult(m));
    } else if (m.content || !m.tool_calls) {
      parts.push(el("div", {class: "content md"}, markdown(m.content)));
    }
    for (const call of m.tool_calls || []) parts.push(toolCall(call));
    const head = el("div", {class: "role"}, numbered ? el("span", {class: "turn-no"}, `${i + 1} · `) : null, m.role,
      m.role === "tool" && m.name ? el("span", {class: "tool-of"}, ` · ${m.name}`) : null);
    if (numbered && editable === false && m.role !== "system") {
      head.append(el("span", {class: "turn-actions"},
        el("button", {type: "button", class: "turn-edit", "data-index": i, title: "edit this turn alone"}, "edit"),
        el("button", {type: "button", class: "turn-reject", "data-index": i, title: "reject the conversation for this turn"}, "reject")));
    }
    return el("div", {class: `msg ${m.role}`, "data-turn": i + 1}, head, ...parts);
  }

  function render(card, editable) {
    const item = view[index];
    const state = card.mine
      ? el("span", {class: `state v-${card.mine.verdict}`}, `you ${VERDICT_WORDS[card.mine.verdict] || card.mine.verdict}`,
        card.mine.reasons.length ? ` (${card.mine.reasons.map(reasonLabel).join(", ")})` : "")
      : el("span", {class: "state v-todo"}, item && item.todo ? "to review" : "read by others");
    const head = el("div", {class: "card-head"},
      el("span", {class: "leaf"}, card.leaf || "(no leaf)"),
      Object.entries(card.axes || {}).map(([k, v]) => el("span", {class: "chip"}, `${k}: ${v}`)),
      state,
      el("span", {class: "position"}, `${index + 1} / ${view.length}`));
    editable = editable === undefined ? false : editable;
    const numbered = isConversation(card);
    const chat = el("div", {class: "chat"}, card.messages.map((m, i) => message(m, editable, i, numbered)));
    // An example made from a passage of the user's documents: the passage beside the answer.
    const parts = [head, card.source ? el("div", {class: "with-source"}, chat, sourcePanel(card.source)) : chat];
    if (editable !== false) parts.push(el("p", {class: "hint"}, "Editing: Ctrl+Enter saves the edit, Esc cancels."));
    if (card.original && editable === false) {
      parts.push(el("details", {class: "original"}, el("summary", {}, "Original (before the edit)"),
        el("div", {class: "chat"}, card.original.map((m, i) => message(m, null, i, numbered)))));
    }
    $("card").replaceChildren(el("article", {class: "card", "data-id": card.id}, parts));
    $("side").replaceChildren(sidePanel(card), leavesPanel());
    sizeBars();
    document.body.dataset.cardId = card.id;
    if (editable !== false) {
      const first = $("card").querySelector("textarea[data-role=assistant]") || $("card").querySelector("textarea");
      if (first) first.focus();
    }
  }

  // The passage is the user's document: text nodes, and <mark> elements around the supporting sentences.
  function highlighted(text, spans) {
    const out = [];
    let at = 0;
    for (const span of spans) {
      if (span.start < at || span.end > text.length) continue;
      if (span.start > at) out.push(text.slice(at, span.start));
      out.push(el("mark", {}, text.slice(span.start, span.end)));
      at = span.end;
    }
    if (at < text.length) out.push(text.slice(at));
    return out;
  }

  function sourcePanel(source) {
    const where = source.page ? `${source.file}, page ${source.page}` : source.file;
    const text = typeof source.text === "string"
      ? el("div", {class: "passage-text"}, ...highlighted(source.text, source.spans))
      : el("p", {class: "muted"}, "The passage's text is not in the run's documents.json.");
    // Only the review's own route: the server built the link from the name documents.json records.
    const link = source.href && source.href.startsWith("/documents/")
      ? el("a", {class: "source-link", href: source.href, target: "_blank", rel: "noopener noreferrer"},
        source.page ? `open page ${source.page} of ${source.file}` : `open ${source.file}`)
      : el("p", {class: "muted"}, "The file is not recorded in the run's documents.json.");
    return el("aside", {class: "source", "aria-label": "source passage"},
      el("div", {class: "role"}, "source passage"),
      el("div", {class: "source-file"}, where),
      source.headings.length ? el("div", {class: "source-headings"}, source.headings.join(" › ")) : null,
      text, link);
  }

  function section(title, ...children) {
    return el("section", {}, el("h3", {}, title), ...children);
  }

  function sidePanel(card) {
    const why = {leaf: "covers its leaf", risk: "risk signal", sample: "random sample", regenerated: "regenerated leaf"};
    const parts = [
      section("Item", el("dl", {},
        el("dt", {}, "id"), el("dd", {}, card.id),
        el("dt", {}, "queued for"), el("dd", {}, why[card.why] || card.why),
        el("dt", {}, "teacher"), el("dd", {}, card.teacher || "unknown"))),
    ];
    if (card.tools && card.tools.length) {
      parts.push(section("Tools", el("ul", {class: "tools"}, card.tools.map((t) => {
        const f = t.function || {};
        return el("li", {}, el("code", {}, f.name || "?"), f.description ? ` ${f.description}` : "");
      }))));
    }
    if (card.signals.length) {
      parts.push(section("Risk signals", el("ul", {class: "signals"},
        card.signals.map((s) => el("li", {}, el("b", {}, s.name), " ", s.detail)))));
    }
    if (card.seeds.length) {
      parts.push(section("Seeds used", el("ul", {class: "seeds"},
        card.seeds.map((s) => el("li", {}, el("code", {}, s.id), s.text ? ` ${s.text}` : "")))));
    }
    parts.push(section("Nearest kept neighbour", card.neighbour
      ? el("p", {}, el("b", {}, `Jaccard ${card.neighbour.similarity.toFixed(2)}`), " ", el("code", {}, card.neighbour.id),
        el("br"), card.neighbour.prompt)
      : el("p", {class: "muted"}, "none at Jaccard 0.3 or more")));
    parts.push(section("Checks", el("ul", {class: "checks"}, card.checks.map((c) =>
      el("li", {class: c.passed ? "pass" : "fail"}, c.passed ? "✓ " : "✗ ", c.name, c.detail ? `: ${c.detail}` : "")))));
    if (card.history.length) {
      parts.push(section("History", el("ol", {class: "history"}, card.history.map((d) =>
        el("li", {}, `${d.reviewer}: ${d.verdict}`, d.reasons.length ? ` (${d.reasons.map(reasonLabel).join(", ")})` : "",
          d.note ? ` “${d.note}”` : "")))));
    }
    return el("div", {}, parts);
  }

  function leavesPanel() {
    const rows = Object.entries(overview.progress.leaves).sort(([a], [b]) => a.localeCompare(b));
    return section("Leaves", el("table", {class: "leaves"}, rows.map(([leaf, p]) =>
      el("tr", {},
        el("td", {}, leaf),
        el("td", {class: "num"}, `${p.done}/${p.items}`),
        el("td", {class: "num"}, p.rejected ? `${p.rejected} rej.` : ""),
        el("td", {}, el("div", {class: "mini"}, el("span", {"data-pct": Math.round(100 * p.done / p.items)})))))));
  }

  function renderHeader() {
    const p = overview.progress;
    $("reviewer").textContent = `· ${overview.reviewer}`;
    $("progress-text").textContent = `${p.done} of ${p.items} done · ${p.mine} by you · ${p.todo} left for you`;
    $("progress-fill").dataset.pct = String(p.items ? Math.round(100 * p.done / p.items) : 0);
    sizeBars();
    const g = overview.gate;
    const f = overview.figures;
    const rate = f.reject_rate === null || f.reject_rate === undefined ? ""
      : ` · reject rate ${(100 * f.reject_rate).toFixed(1)}% (${f.interval} ${(100 * f.reject_rate_ci[0]).toFixed(1)}–${(100 * f.reject_rate_ci[1]).toFixed(1)}%)`;
    const more = g.reviews_to_decide ? ` · about ${g.reviews_to_decide} more reviews would decide it` : "";
    $("gate").replaceChildren(el("span", {class: `gate-${g.verdict}`}, `gate: ${g.verdict}`), rate, more);
    $("gate").title = g.message;
    const leafSelect = $("filter-leaf");
    const have = new Set([...leafSelect.options].map((o) => o.value));
    const branches = new Set();
    for (const leaf of Object.keys(p.leaves)) {
      const parts = leaf.split("/");
      for (let k = 1; k <= parts.length; k++) branches.add(parts.slice(0, k).join("/"));
    }
    for (const leaf of [...branches].sort()) if (!have.has(leaf)) leafSelect.append(el("option", {value: leaf}, leaf));
  }

  // Widths come from data-pct through the CSSOM, not inline style attributes (the CSP forbids those).
  function sizeBars() {
    for (const node of document.querySelectorAll("[data-pct]")) node.style.width = `${node.dataset.pct}%`;
  }

  // ---- refresh from the server (progress, gate, other reviewers), keeping the card in place
  let refreshTimer = null;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 300);
  }

  async function refresh() {
    if (writing) return scheduleRefresh(); // never show a stale state over a decision in flight
    overview = await get("/api/queue");
    renderHeader();
    view = filtered();
    const at = view.findIndex((item) => item.id === target);
    if (at >= 0) index = at;
    else if (mode === "view") await show(Math.max(0, nextTodo(-1)));
    const side = $("side");
    if (mode === "view" && side.lastElementChild) {
      side.replaceChild(leavesPanel(), side.lastElementChild);
      sizeBars();
    }
  }

  // ---- decisions
  function markLocally(id, verdict) {
    const item = overview.items.find((x) => x.id === id);
    if (item) {
      item.mine = verdict;
      item.todo = verdict === "skip" ? item.todo : false;
      if (verdict !== "skip") item.outcome = item.outcome === "reject" ? "reject" : verdict; // refresh() corrects
    }
    cards.delete(id);
  }

  function decide(verdict, extra, t0) {
    const item = view[index];
    if (!item) return;
    const body = Object.assign({item_id: item.id, verdict, client_id: uuid(),
      seconds: (performance.now() - shownAt) / 1000}, extra || {});
    markLocally(item.id, verdict);
    write("/api/decide", body).then(() => cards.delete(item.id)).catch(() => {});
    toast(`${VERDICT_WORDS[verdict]}: ${item.id}`);
    const next = nextTodo(index);
    show(next >= 0 ? next : index, t0);
  }

  async function undo(t0) {
    try {
      const result = await write("/api/undo", {client_id: uuid()});
      if (!result.undone) return toast("nothing of yours to undo");
      const id = result.undone.item_id;
      cards.delete(id);
      overview = await get("/api/queue");
      renderHeader();
      view = filtered();
      let at = view.findIndex((x) => x.id === id);
      if (at < 0) { // filtered out: clear the filters to bring it back
        $("filter-leaf").value = ""; $("filter-verdict").value = ""; $("filter-reason").value = "";
        view = filtered();
        at = view.findIndex((x) => x.id === id);
      }
      toast(`undone: ${id}`);
      await show(at, t0);
    } catch (err) {
      toast(`undo failed: ${err.message}`, true);
    }
  }

  // ---- modes
  // turn: the index of the turn the reject is about (a turn's "reject" button), else the whole item.
  function openReasons(turn) {
    const card = cards.get(view[index].id);
    mode = "reason";
    chosen.clear();
    $("reason-note").value = "";
    $("reason-list").replaceChildren(...hello.reasons.map((r) =>
      el("li", {"data-code": r.code}, el("kbd", {}, r.key), " ", r.label)));
    const numbered = Boolean(card) && isConversation(card);
    $("reason-turn-label").hidden = !numbered;
    $("reason-turn").replaceChildren(el("option", {value: ""}, "the whole conversation"),
      ...(numbered ? card.messages : []).map((m, i) => m.role === "system" ? null
        : el("option", {value: String(i + 1)}, `turn ${i + 1} · ${m.role}`)).filter(Boolean));
    $("reason-turn").value = numbered && turn !== undefined ? String(turn + 1) : "";
    $("reasons").hidden = false;
  }

  function closeReasons() {
    mode = "view";
    $("reasons").hidden = true;
    $("reason-note").blur();
    $("reason-turn").blur();
  }

  function toggleReason(key) {
    const reason = hello.reasons.find((r) => r.key === key);
    if (!reason) return;
    if (chosen.has(reason.code)) chosen.delete(reason.code); else chosen.add(reason.code);
    for (const li of $("reason-list").children) li.classList.toggle("on", chosen.has(li.dataset.code));
  }

  function confirmReject(t0) {
    if (!chosen.size) return toast("pick at least one reason: keys 1–7");
    const note = $("reason-note").value;
    const turn = $("reason-turn-label").hidden ? "" : $("reason-turn").value;
    closeReasons();
    decide("reject", turn ? {reasons: [...chosen], note, turn: Number(turn)} : {reasons: [...chosen], note}, t0);
  }

  // turn: the index of the one turn to edit (a turn's "edit" button), else every turn.
  function startEdit(turn) {
    const id = view[index] && view[index].id;
    if (!id || !cards.has(id)) return;
    mode = "edit";
    render(cards.get(id), turn === undefined ? true : turn);
  }

  function saveEdit(t0) {
    const card = cards.get(view[index].id);
    const edits = new Map([...$("card").querySelectorAll("textarea")].map((area) => [Number(area.dataset.index), area.value]));
    // Each turn as it came, its text replaced where it was edited: tool calls, call ids, tool names and
    // reasoning go back with it, so an edit of one answer never drops them from the conversation.
    const messages = card.messages.map((m, i) => (edits.has(i) ? Object.assign({}, m, {content: edits.get(i)}) : m));
    mode = "view";
    if (messages.every((m, i) => m.content === card.messages[i].content)) {
      render(card);
      return toast("nothing changed: press a to accept as it is");
    }
    if (messages.some((m, i) => m.role !== "system" && !m.content.trim() && !(m.tool_calls && m.tool_calls.length) &&
        m.content !== card.messages[i].content)) {
      mode = "edit";
      return toast("a turn is empty: reject the item instead (Esc, then r)");
    }
    decide("edit", {messages}, t0);
  }

  function cancelEdit() {
    mode = "view";
    render(cards.get(view[index].id));
  }

  function toggleHelp() {
    const help = $("help");
    help.hidden = !help.hidden;
    mode = help.hidden ? "view" : "help";
  }

  // ---- keys
  document.addEventListener("keydown", (event) => {
    const t0 = performance.now();
    const key = event.key;
    const typing = event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement ||
      event.target instanceof HTMLSelectElement;
    if (mode === "edit") {
      if (key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); saveEdit(t0); }
      else if (key === "Escape") { event.preventDefault(); cancelEdit(); }
      return;
    }
    if (mode === "reason") {
      if (key === "Escape") { event.preventDefault(); closeReasons(); }
      else if (key === "Enter") { event.preventDefault(); confirmReject(t0); }
      else if (key === "Tab" && !typing) { event.preventDefault(); $("reason-note").focus(); }
      else if (!typing && /^[1-9]$/.test(key)) { event.preventDefault(); toggleReason(key); }
      return;
    }
    if (mode === "help") {
      if (key === "Escape" || key === "?") { event.preventDefault(); toggleHelp(); }
      return;
    }
    if (typing) {
      if (key === "Escape") { event.target.blur(); event.preventDefault(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || !overview) return;
    const actions = {
      a: () => decide("accept", {}, t0),
      r: () => openReasons(),
      e: () => startEdit(),
      s: () => decide("skip", {}, t0),
      u: () => undo(t0),
      j: () => show(index + 1, t0),
      ArrowRight: () => show(index + 1, t0),
      k: () => show(index - 1, t0),
      ArrowLeft: () => show(index - 1, t0),
      n: () => { const j = nextTodo(index); if (j >= 0) show(j, t0); else toast("nothing left for you to review"); },
      "/": () => $("filter-leaf").focus(),
      "?": () => toggleHelp(),
    };
    const action = actions[key];
    if (action && (view.length || "u?/".includes(key))) {
      event.preventDefault();
      action();
    }
  });

  // A turn's own buttons (conversations): edit that turn alone, or reject the item for it.
  $("card").addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[data-index]") : null;
    if (!button || mode !== "view" || !view.length) return;
    const turn = Number(button.dataset.index);
    button.blur();
    if (button.classList.contains("turn-edit")) startEdit(turn);
    else if (button.classList.contains("turn-reject")) openReasons(turn);
  });

  for (const id of ["filter-leaf", "filter-verdict", "filter-reason"]) {
    $(id).addEventListener("change", () => {
      view = filtered();
      show(0);
      $(id).blur();
    });
  }

  async function boot() {
    try {
      hello = await get("/api/hello");
      $("directory").textContent = hello.directory;
      for (const r of hello.reasons) $("filter-reason").append(el("option", {value: r.code}, r.label));
      overview = await get("/api/queue");
      renderHeader();
      view = filtered();
      await show(Math.max(0, nextTodo(-1)));
      document.body.dataset.ready = "1";
    } catch (err) {
      $("card").replaceChildren(el("p", {class: "empty"}, `Could not load the review: ${err.message}`));
    }
  }

  boot();
})();
