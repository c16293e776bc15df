// The labelling page: synchronised playback of two clips, keyboard answers, one POST per answer.
"use strict";
const params = new URLSearchParams(location.search);
const query = params.toString() ? "?" + params.toString() : "";
const left = document.getElementById("left"), right = document.getElementById("right");
const state = { item: null, shownAt: 0, confidence: null, rubric: {}, view: null, busy: false };

function setStatus(text) { document.getElementById("status").textContent = text; }

function fps() { return state.item ? state.item.fps : 1; }
function frameOf(t) { return Math.min(state.item.frames - 1, Math.floor(t * fps() + 1e-6)); }

// The left clip is the clock; the right one is pulled back to it whenever they drift apart by
// more than half a frame, so both always show the same step of their segments.
function sync() {
  if (state.item && Math.abs(right.currentTime - left.currentTime) > 0.5 / fps()) {
    right.currentTime = left.currentTime;
  }
  if (state.item) {
    document.getElementById("frame").textContent = `frame ${frameOf(left.currentTime) + 1}/${state.item.frames}`;
  }
  requestAnimationFrame(sync);
}

function playBoth() { return Promise.all([left.play(), right.play()]).catch(() => {}); }
function pauseBoth() { left.pause(); right.pause(); }
function togglePlay() { if (left.paused) { playBoth(); } else { pauseBoth(); } }

function step(delta) {
  pauseBoth();
  const f = Math.max(0, Math.min(state.item.frames - 1, frameOf(left.currentTime) + delta));
  left.currentTime = right.currentTime = (f + 0.5) / fps();  // mid-frame: no rounding to a neighbour
}

function setSpeed(rate) {
  left.playbackRate = right.playbackRate = rate;
  document.getElementById("speed").value = String(rate);
}

function showView(view) {
  const t = left.currentTime, playing = !left.paused;
  state.view = view;
  document.getElementById("view").value = view;
  left.src = state.item.clips[view].left;
  right.src = state.item.clips[view].right;
  left.currentTime = right.currentTime = t;
  if (playing || t === 0) { playBoth(); }
}

function chooseConfidence(i) {
  const levels = state.item.confidence_levels;
  if (i < 0 || i >= levels.length) { return; }
  state.confidence = levels[i];
  document.querySelectorAll("#confidence button").forEach((b, j) => b.classList.toggle("chosen", i === j));
}

function buildItem(item) {
  state.item = item;
  state.rubric = {};
  state.shownAt = performance.now();
  const conf = document.getElementById("confidence");
  conf.innerHTML = "confidence: ";
  item.confidence_levels.forEach((c, i) => {
    const b = document.createElement("button");
    b.textContent = `${c} (${i + 1})`;
    b.onclick = () => chooseConfidence(i);
    conf.appendChild(b);
  });
  chooseConfidence(item.confidence_levels.length - 1);
  const rub = document.getElementById("rubric");
  rub.innerHTML = "";
  item.rubric.forEach((q) => {
    const row = document.createElement("div");
    row.className = "rubric-q";
    row.append(item.questions[q]);
    ["left", "equal", "right"].forEach((a) => {
      const b = document.createElement("button");
      b.textContent = a;
      b.onclick = () => {
        state.rubric[q] = a;
        row.querySelectorAll("button").forEach((x) => x.classList.toggle("chosen", x === b));
      };
      row.appendChild(b);
    });
    rub.appendChild(row);
  });
  const sel = document.getElementById("view");
  sel.innerHTML = "";
  item.views.forEach((v) => { const o = document.createElement("option"); o.textContent = v; sel.appendChild(o); });
  const view = item.views.includes(state.view) ? state.view : item.views[0];
  left.currentTime = 0;
  showView(view);
  document.body.dataset.itemId = item.item_id;
}

function showProgress(p) {
  let text = `${p.done} / ${p.total} answered`;
  if ("gold_accuracy" in p && p.gold_accuracy !== null) {
    text += ` · gold accuracy ${(100 * p.gold_accuracy).toFixed(0)}% of ${p.gold_answered}`;
  }
  document.getElementById("progress").textContent = text;
}

function show(data) {
  showProgress(data.progress);
  if (data.item) { buildItem(data.item); } else {
    state.item = null;
    pauseBoth();
    document.body.dataset.itemId = "";
    document.body.dataset.done = "true";
    setStatus("All pairs answered. Thank you!");
  }
}

async function answer(label) {
  if (!state.item || state.busy) { return; }
  state.busy = true;
  const body = { item_id: state.item.item_id, label, confidence: state.confidence,
                 seconds: (performance.now() - state.shownAt) / 1000 };
  if (Object.keys(state.rubric).length) { body.rubric = state.rubric; }
  try {
    const r = await fetch("/api/label" + query, { method: "POST", headers: { "Content-Type": "application/json" },
                                                  body: JSON.stringify(body) });
    const data = await r.json();
    if (!r.ok) { setStatus(`not saved: ${data.error}`); return; }
    setStatus("");
    show(data);
  } catch (e) {
    setStatus(`not saved (${e}); answer again`);
  } finally {
    state.busy = false;
  }
}

const SPEEDS = [0.25, 0.5, 1, 2];
const KEYS = { ArrowLeft: "left", a: "left", ArrowRight: "right", d: "right", ArrowDown: "equal", s: "equal", x: "skip" };
document.addEventListener("keydown", (e) => {
  if (!state.item || e.ctrlKey || e.metaKey || e.altKey) { return; }
  const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (k in KEYS) { e.preventDefault(); answer(KEYS[k]); }
  else if (k === " ") { e.preventDefault(); togglePlay(); }
  else if (k === ",") { step(-1); } else if (k === ".") { step(1); }
  else if (k === "[" || k === "]") {
    const i = SPEEDS.indexOf(left.playbackRate);
    setSpeed(SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, (i < 0 ? 2 : i) + (k === "]" ? 1 : -1)))]);
  } else if (k === "c") {
    const v = state.item.views;
    showView(v[(v.indexOf(state.view) + 1) % v.length]);
  } else if (/^[1-9]$/.test(k)) { chooseConfidence(Number(k) - 1); }
});
document.querySelectorAll("#labels button").forEach((b) => { b.onclick = () => answer(b.dataset.label); });
document.getElementById("play").onclick = togglePlay;
document.getElementById("step-back").onclick = () => step(-1);
document.getElementById("step-fwd").onclick = () => step(1);
document.getElementById("speed").onchange = (e) => setSpeed(Number(e.target.value));
document.getElementById("view").onchange = (e) => showView(e.target.value);

fetch("/api/next" + query).then(async (r) => {
  const data = await r.json();
  if (!r.ok) { setStatus(data.error); return; }
  show(data);
});
requestAnimationFrame(sync);
