"""The voice app's built-in kiosk page (GET /): one self-contained HTML document — no external file, font or
CDN, so it works on a board with no network. It reads /v1/info once and /v1/events as they come, shows the
last command large, a level meter, the keywords' scores, the input's state and warnings, and reconnects by
itself (EventSource) when the executable restarts. For a model that enrols commands, "add a command" records
takes from the device's own input (/v1/commands), shows each take's check and the quality to expect, and saves
it; the listener hears it a second later. Laid out in viewport units for a 800x480 touchscreen and a 1080p
screen alike."""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Voice commands</title>
<style>
  :root { --bg:#0f1419; --panel:#19212a; --text:#e8eef4; --dim:#8a98a8; --accent:#4fd1a5; --warn:#f5b942;
          --bad:#ef6461; --bar:#2a3542; }
  * { box-sizing: border-box; }
  html, body { margin:0; height:100%; background:var(--bg); color:var(--text);
               font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; overflow:hidden; }
  body { display:grid; grid-template-rows:auto 1fr auto; height:100vh; padding:2vh 2.5vw; gap:2vh; }
  header { display:flex; justify-content:space-between; align-items:center; font-size:clamp(14px,2.6vh,28px); }
  #state { display:flex; align-items:center; gap:.6em; }
  #dot { width:.8em; height:.8em; border-radius:50%; background:var(--dim); }
  #dot.ok { background:var(--accent); } #dot.warn { background:var(--warn); } #dot.bad { background:var(--bad); }
  #device { color:var(--dim); }
  main { display:grid; grid-template-columns: 3fr 2fr; gap:2.5vw; min-height:0; }
  #last { background:var(--panel); border-radius:2vh; display:flex; flex-direction:column; align-items:center;
          justify-content:center; min-height:0; }
  #word { font-size:clamp(48px,22vh,260px); font-weight:700; letter-spacing:.02em; line-height:1;
          transition: color .6s; }
  #word.fresh { color:var(--accent); }
  #word.idle { color:var(--dim); font-size:clamp(24px,8vh,90px); font-weight:400; }
  #meta { color:var(--dim); font-size:clamp(12px,3vh,30px); margin-top:2vh; }
  #history { color:var(--dim); font-size:clamp(12px,2.6vh,26px); margin-top:1.5vh; min-height:1.3em; }
  #side { display:grid; grid-template-rows:auto 1fr; gap:2vh; min-height:0; }
  .panel { background:var(--panel); border-radius:2vh; padding:1.6vh 1.6vw; min-height:0; }
  .label { color:var(--dim); font-size:clamp(11px,2.2vh,22px); margin-bottom:.8vh; }
  #meter { height:3.2vh; background:var(--bar); border-radius:1.6vh; overflow:hidden; }
  #level { height:100%; width:0; background:linear-gradient(90deg,var(--accent),var(--warn) 80%,var(--bad));
           transition: width .12s linear; }
  #scores { display:grid; grid-auto-rows:1fr; gap:.7vh; height:100%; }
  .row { display:grid; grid-template-columns: 5.5em 1fr; align-items:center; gap:.6em;
         font-size:clamp(11px,2.4vh,24px); min-height:0; }
  .track { height:70%; max-height:2.6vh; background:var(--bar); border-radius:1vh; overflow:hidden; }
  .fill { height:100%; width:0; background:var(--accent); transition: width .15s linear; }
  footer { min-height:4vh; font-size:clamp(12px,2.6vh,26px); }
  #warning { color:var(--warn); }
  #warning.bad { color:var(--bad); }
  button { font:inherit; color:var(--text); background:var(--bar); border:0; border-radius:1vh;
           padding:.5em 1em; cursor:pointer; }
  button:disabled { opacity:.4; cursor:default; }
  button.main { background:var(--accent); color:var(--bg); font-weight:700; }
  #add { display:none; }
  #enrol { position:fixed; inset:0; background:rgba(15,20,25,.96); display:none; padding:3vh 4vw;
           font-size:clamp(13px,2.8vh,28px); overflow:auto; }
  #enrol.open { display:grid; grid-template-rows:auto auto 1fr auto auto; gap:1.6vh; }
  #enrol h2 { margin:0; font-size:1.3em; }
  #enrol .line { display:flex; gap:1vw; align-items:center; flex-wrap:wrap; }
  #label { font:inherit; padding:.4em .6em; border-radius:1vh; border:1px solid var(--dim); background:var(--panel);
           color:var(--text); min-width:10em; }
  #takes { list-style:none; margin:0; padding:0; overflow:auto; min-height:0; }
  #takes li { padding:.2em 0; } #takes li.ok { color:var(--accent); } #takes li.bad { color:var(--warn); }
  #quality { color:var(--dim); } #enrol-note { color:var(--warn); min-height:1.2em; }
  #enrol-note.done { color:var(--accent); }
  #mine span { margin-right:1.2em; }
</style>
</head>
<body>
<header>
  <div id="state"><span id="dot"></span><span id="status">connecting…</span></div>
  <div class="line"><span id="device"></span> <button id="add" type="button">+ add a command</button></div>
</header>
<main>
  <section id="last">
    <div id="word" class="idle">say a command</div><div id="meta"></div><div id="history"></div>
  </section>
  <section id="side">
    <div class="panel"><div class="label">input level</div><div id="meter"><div id="level"></div></div></div>
    <div class="panel"><div class="label">scores</div><div id="scores"></div></div>
  </section>
</main>
<footer><span id="warning"></span></footer>
<section id="enrol" aria-label="add a command">
  <h2>Add a command</h2>
  <div class="line">
    <input id="label" placeholder="the word, in any language" maxlength="32" autocomplete="off">
    <button id="record" type="button" class="main">record a take</button>
    <span id="hint">say it once per take, as you will say it to the device; 3 to 5 takes</span>
  </div>
  <ul id="takes"></ul>
  <div id="quality"></div>
  <div class="line">
    <button id="save" type="button" disabled>save</button> <button id="cancel" type="button">close</button>
    <span id="enrol-note"></span>
  </div>
  <div id="mine"></div>
</section>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let bars = {}, history = [], fadeTimer = null, lastSeen = 0;

function setState(text, kind) { $("status").textContent = text; $("dot").className = kind; }

function buildBars(keywords) {
  const box = $("scores"); box.innerHTML = ""; bars = {};
  for (const k of keywords) {
    const row = document.createElement("div"); row.className = "row";
    const name = document.createElement("span"); name.textContent = k;
    const track = document.createElement("div"); track.className = "track";
    const fill = document.createElement("div"); fill.className = "fill";
    track.appendChild(fill); row.appendChild(name); row.appendChild(track); box.appendChild(row);
    bars[k] = fill;
  }
}

function loadInfo() {
  fetch("/v1/info", {credentials: "same-origin"}).then(r => r.json()).then(info => {
    const app = info.app || {};
    const kept = app.builtins;
    const keywords = (app.labels || []).filter(l => !l.startsWith("_") && (!kept || kept.includes(l)));
    buildBars(keywords);
    $("add").style.display = app.enrol ? "inline-block" : "none";
  }).catch(() => {});
}

// --- add a command: takes recorded from the device's input, each checked by the executable
let takes = 0;
const pct = (x) => (100 * x).toFixed(x < 0.1 ? 1 : 0) + " %";
function note(text, done) { $("enrol-note").textContent = text; $("enrol-note").className = done ? "done" : ""; }
function api(method, path, body) {
  return fetch(path, {method, credentials: "same-origin", body}).then(r => r.json().then(j => {
    if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
    return j;
  }));
}
function commandPath(suffix) {
  return "/v1/commands/" + encodeURIComponent($("label").value.trim()) + (suffix || "");
}
function showQuality(d) {
  if (!d || !d.takes) { $("quality").textContent = ""; return; }
  const parts = [d.takes + " good take(s)"];
  parts.push(d.hit_rate == null ? "expected hit rate: after a second take" : "expected hit rate " + pct(d.hit_rate));
  parts.push("false accepts " + pct(d.false_accepts));
  const confused = (d.confusable || []).map(c => c.label + " (" + pct(c.overlap) + ")");
  if (confused.length) parts.push("may be confused with " + confused.join(", "));
  $("quality").textContent = parts.join(" · ");
}
function listMine() {
  api("GET", "/v1/commands").then(j => {
    const box = $("mine"); box.textContent = "";
    const mine = j.commands.filter(c => c.source === "enrolled");
    if (mine.length) box.append("your commands: ");
    for (const c of mine) {
      const span = document.createElement("span"); span.textContent = c.label + " ";
      const forget = document.createElement("button"); forget.type = "button"; forget.textContent = "forget";
      forget.onclick = () => api("DELETE", "/v1/commands/" + encodeURIComponent(c.label))
        .then(() => { note("forgot " + c.label, true); listMine(); }).catch(e => note(e.message));
      span.append(forget); box.append(span);
    }
  }).catch(() => {});
}
function resetDraft() {
  takes = 0; $("takes").textContent = ""; $("quality").textContent = ""; $("save").disabled = true;
}
$("add").onclick = () => { $("enrol").className = "open"; note(""); resetDraft(); listMine(); $("label").focus(); };
$("cancel").onclick = () => {
  if (takes && $("label").value.trim()) api("DELETE", commandPath("/takes")).catch(() => {});
  $("enrol").className = "";
};
$("label").oninput = () => resetDraft();
$("record").onclick = () => {
  if (!$("label").value.trim()) { note("type the command's name first"); return; }
  $("record").disabled = true; note("speak now…");
  api("POST", commandPath("/takes")).then(j => {
    takes += 1;
    const li = document.createElement("li");
    li.className = j.take.ok ? "ok" : "bad";
    li.textContent = "take " + takes + ": " + (j.take.ok ? "✓ " + j.take.speech_s.toFixed(1) + " s of speech"
                                                            : "✗ " + j.take.problem);
    $("takes").append(li);
    showQuality(j.draft);
    $("save").disabled = !j.draft.takes;
    note(j.take.ok ? (j.draft.takes < 3 ? "good; another take" : "good; save, or one more take")
                   : "that take was not kept; try again");
  }).catch(e => note(e.message)).finally(() => { $("record").disabled = false; });
};
$("save").onclick = () => {
  $("save").disabled = true;
  api("POST", commandPath()).then(j => {
    note("saved " + j.command.label + (j.warnings.length ? " — " + j.warnings.join("; ") : ""), true);
    resetDraft(); listMine();
  }).catch(e => { note(e.message); $("save").disabled = false; });
};

function onDetection(d) {
  const w = $("word");
  w.textContent = d.label; w.className = "fresh";
  $("meta").textContent = "score " + d.score.toFixed(2) + " · at " + d.t.toFixed(1) + " s";
  history.unshift(d.label); history = history.slice(0, 6);
  $("history").textContent = history.slice(1).join("  ·  ");
  clearTimeout(fadeTimer);
  fadeTimer = setTimeout(() => { w.className = ""; }, 1500);
  document.body.dataset.detections = String((+document.body.dataset.detections || 0) + 1);
}

function onLevel(e) {
  const pct = Math.max(0, Math.min(100, (e.rms_db + 60) / 60 * 100));
  $("level").style.width = pct.toFixed(1) + "%";
  for (const [k, v] of Object.entries(e.scores || {})) {
    if (bars[k]) bars[k].style.width = (100 * v).toFixed(1) + "%";
  }
}

function onStatus(s) {
  lastSeen = Date.now();
  // a WAV file by its name: its folder means nothing to the people in front of the screen
  const where = s.source === "wav" ? (s.device || "").split("/").pop() : s.device;
  $("device").textContent = where ? where + (s.rate ? " · " + s.rate + " Hz" : "") : "";
  const warn = $("warning");
  const kind = s.state === "listening" ? (s.warning ? "warn" : "ok") : (s.state === "ended" ? "warn" : "bad");
  const words = {listening: "listening", reconnecting: "device lost — reconnecting", lost: "input lost",
                 ended: "the file has ended"};
  setState(words[s.state] || s.state, kind);
  const notes = [];
  if (s.warning) notes.push(s.warning);
  if (s.dropped_frames) notes.push(s.dropped_frames + " frames dropped");
  if (s.overflows) notes.push(s.overflows + " overflow(s)");
  warn.textContent = notes.join(" · "); warn.className = s.state === "listening" ? "" : "bad";
}

function connect() {
  const es = new EventSource("/v1/events", {withCredentials: true});
  es.onopen = () => { setState("connected", "ok"); loadInfo(); };
  es.onerror = () => {
    setState("server unreachable — reconnecting…", "bad");
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);  // refused for good: start anew
  };
  es.addEventListener("detection", (m) => onDetection(JSON.parse(m.data)));
  es.addEventListener("level", (m) => onLevel(JSON.parse(m.data)));
  es.addEventListener("status", (m) => onStatus(JSON.parse(m.data)));
}
setInterval(() => {
  if (lastSeen && Date.now() - lastSeen > 5000) setState("no news from the server…", "warn");
}, 1000);
connect();
</script>
</body>
</html>
"""
