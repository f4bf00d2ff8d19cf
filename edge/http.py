"""Live view, ``/healthz`` and ``/metrics`` over HTTP (off by default; binds 127.0.0.1).

The live stream is MJPEG. It takes the frames the pipeline already analysed (never the camera a
second time), at ``http.stream_fps``; a frame is drawn and JPEG-encoded once, by whichever
viewer's thread asks first, and the others send the same bytes: with nobody watching it costs
nothing, more viewers cost no more encoding (up to ``http.max_viewers``), and a viewer never
blocks analysis (a viewer that stops reading is dropped after a write timeout).
Access can require a bearer token (``?token=`` for the browser) or HTTP basic auth.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import logging
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, quote, urlparse

import cv2
import numpy as np

from edge.config import CLOCK_NOT_SET, HTTPConfig
from edge.errors import CommandRefused, YuzugError
from edge.overlay import COLOURS, OTHER_COLOUR, draw_face, draw_ignored, to_canvas
from edge.page_text import page_text
from edge.pipeline import BUCKETS_MS

if TYPE_CHECKING:
    from edge.app import EdgeApp, FrameResult

logger = logging.getLogger(__name__)

STREAM_WRITE_TIMEOUT_S = 10.0
# A browser shows a part of an MJPEG stream once the next part begins: the paused picture,
# which has no successor for hours, is sent again this often so that it is shown at all.
PAUSED_RESEND_S = 1.0
TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*")
PAUSED = object()  # what a viewer was last sent while the camera is closed for privacy


def _same(offered: str, secret: str) -> bool:
    """Constant-time comparison of UTF-8 bytes: ``hmac.compare_digest`` raises TypeError for
    str with non-ASCII characters, so a password such as "şifre" could never log in and any
    client could make each request fail with a traceback by sending one."""
    return hmac.compare_digest(offered.encode(), secret.encode())


STYLE = """
body { font-family: system-ui, sans-serif; background: #14161a; color: #e8e8e8; margin: 0; }
main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; max-width: 1040px; }
img { max-width: 100%; width: 640px; border-radius: 8px; background: #000; }
#view { flex: 0 1 640px; position: relative; line-height: 0; align-self: flex-start; }
#view img { width: 100%; }
#live.marking { cursor: crosshair; touch-action: none; }
.mark { position: absolute; box-sizing: border-box; border: 2px dashed #e8e8e8;
  background: rgba(154, 160, 166, 0.3); pointer-events: none; }
#region-setting { font-family: ui-monospace, monospace; user-select: all; }
aside { flex: 1 1 240px; max-width: 340px; overflow-wrap: anywhere; }
@media (max-width: 700px) { aside { max-width: none; } }  /* a phone: under the video, full width */
.emotion { font-size: 2.4em; font-weight: 700; text-transform: capitalize; }
.muted { color: #9aa0a6; }
.box { background: #1f2329; padding: 12px; border-radius: 8px; margin-bottom: 12px;
  box-sizing: border-box; }
.score { display: grid; grid-template-columns: 5em 1fr 3em; gap: 6px; align-items: center; }
.score i { display: block; height: 10px; border-radius: 5px; }
#mood, #diary-box { flex: 1 1 100%; min-width: 0; }
.days { display: flex; font-size: 0.8em; }
.days span { flex: 1; text-align: center; }
#diary { display: block; width: 100%; height: 80px; background: #16191e; margin: 8px 0 2px; }
#timeline { display: block; width: 100%; height: 60px; background: #16191e; margin: 8px 0 2px; }
.axis { display: flex; justify-content: space-between; font-size: 0.8em; }
#legend { display: flex; flex-wrap: wrap; }  /* a phone puts the shares on two lines */
#legend span { margin-right: 14px; white-space: nowrap; }
#events { margin: 8px 0 0; padding: 0; list-style: none; }
#events li { margin: 2px 0; }
button { background: #2a2f37; color: #e8e8e8; border: 0; border-radius: 6px;
  padding: 6px 10px; margin: 6px 6px 0 0; cursor: pointer; }
button:disabled { opacity: 0.5; cursor: default; }
"""

# The page's behaviour: the state every second, the mood timeline every 5 s. Text from the
# daemon (labels, suggestions) goes in with textContent, never as HTML.
SCRIPT = """
const SVG = "http://www.w3.org/2000/svg";
const QUIET = ["no_face", "paused"];  // drawn as a thin bar: nobody to read
const byId = (id) => document.getElementById(id);
const colour = (label) => COLOURS[label] || COLOURS["*"];
// Numbers, times and weekdays the page's language's way ("92%", "%92"; "+0.30", "+0,30"), in
// the browser's own variant of it where it has one (en-GB: a 24-hour clock).
const LOCALE = navigator.languages.find((l) => l.split("-")[0] === LANG) || LANG;
const PERCENT = new Intl.NumberFormat(LOCALE, {style: "percent", maximumFractionDigits: 0});
const OFFSET = new Intl.NumberFormat(LOCALE, {minimumFractionDigits: 2, maximumFractionDigits: 2,
  signDisplay: "always"});
const percent = (p) => PERCENT.format(p);
const width = (p) => (p * 100).toFixed(1) + "%";  // CSS, whatever the language
const say = (label) => T.labels[label] || label.replaceAll("_", " ");
const fill = (template, values) =>
  template.replace(/\\{(\\w+)\\}/g, (field, name) => name in values ? values[name] : field);
const count = (forms, n) => fill(n === 1 ? forms.one : forms.other, {n});
const clock = (age) => new Date(Date.now() - age * 1000).toLocaleTimeString(LOCALE);

function element(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function showScores(scores) {
  const box = byId("scores");
  box.replaceChildren();
  const labels = Object.keys(scores);
  if (!labels.length) { box.textContent = "–"; return; }
  for (const label of labels) {
    const row = element("div", undefined, "score");
    const bar = element("i");
    bar.style.width = width(scores[label]);
    bar.style.background = colour(label);
    row.append(element("span", say(label)), bar, element("span", percent(scores[label])));
    box.append(row);
  }
}

// Fitting the model to whoever is in front of the camera: a button per label; the daemon
// gives 3 s to get ready, records the next 8 s of faces and refits.
const face = (label) => T.fit_faces[label] || say(label);
const labelList = (labels) => labels.map(say).join(", ");

function applied(fit) {  // whether the person's offsets apply, as the daemon reports it
  if (fit.state === "on") {
    const moved = Object.entries(fit.offsets).map(([label, v]) => say(label) + " " +
      OFFSET.format(v));
    return fill(T.applied.on, {offsets: moved.join(", ") || T.applied.no_offsets,
      faces: fit.faces});
  }
  if (fit.state === "not_applied") return T.applied.not_applied[fit.code] || fit.reason;
  return T.applied.off;
}

// Why a command did nothing or a recording was not kept, in the page's words when the daemon
// gives a code for it (a malformed request keeps the daemon's English).
const why = (answer) => T.why[answer.code] || answer.error;

function showPersonal(p, paused) {
  const buttons = byId("teach");
  if (!p.available) {
    byId("taught").textContent = T.fit_unavailable;
    return;
  }
  if (!buttons.childElementCount) {
    // The heading leads into the buttons ("… show the camera your" [relaxed face]), so it
    // says so only when they are there.
    byId("fit-title").textContent = T.fit_prompt;
    for (const label of p.labels) {  // in fit_order: the relaxed face first
      const b = element("button", face(label));
      b.dataset.label = label;
      b.onclick = () => send({record: label, seconds: 8, delay: 3});
      buttons.append(b);
    }
    const forget = element("button", T.forget);
    forget.onclick = () => send({forget: true});
    buttons.append(forget);
  }
  for (const b of buttons.children) b.disabled = Boolean(p.recording) || paused;
  const r = p.recording, last = p.last;
  let text = "";
  if (r && r.starts_in > 0) text = fill(T.get_ready, {n: Math.ceil(r.starts_in)});
  else if (r) text = fill(T.recording, {label: face(r.label), seconds: r.seconds_left,
    faces: r.faces});
  else if (paused) text = T.why.paused;  // what the greyed buttons wait for
  else if (last && last.error) text = face(last.label || "") + ": " + why(last);
  else if (last && last.forgotten) text = T.forgotten;
  else if (last && last.after) text = fill(T.read_right, {changes: Object.keys(last.after).map(
    (label) => face(label) + " " + percent(last.before[label]) + " → " +
      percent(last.after[label])
  ).join(" · ")});
  if (!r && last && last.advice) text += " · " +
    fill(T.hints[last.advice.code], {labels: labelList(last.advice.labels)});
  byId("taught").textContent = text;
  byId("applied").textContent = applied(p.fit);
}

// A command to the daemon; a refusal is shown in the box it came from.
async function post(path, body, where) {
  const r = await fetch(path + QUERY, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  if (!r.ok) byId(where).textContent = why(await r.json());
  refresh();
  return r.ok;
}
const send = (body) => post("api/personal", body, "taught");

// The person's say on the suggestions: another one, not this one ever again, or all back.
async function suggest(body) {
  if (await post("api/suggestion", body, "suggested")) byId("suggested").textContent = "";
}

let shownId = null;  // "not for me" names what the page shows, not what the daemon has since

byId("another").onclick = () => suggest({next: true});
byId("not-for-me").onclick = () => suggest({dismiss: shownId});
byId("restore").onclick = () => suggest({restore: true});

function showSuggestion(s) {
  shownId = s.current ? s.current.id : null;
  byId("suggestion").textContent = s.current ? s.current.text : "–";
  byId("not-for-me").disabled = !s.current;
  byId("another").disabled = !s.askable;
  const restore = byId("restore");
  restore.hidden = !s.dismissed;
  restore.textContent = fill(T.bring_back, {n: s.dismissed});
}

async function refresh() {
  try {
    const s = await (await fetch("api/state" + QUERY)).json();
    byId("emotion").textContent = say(s.emotion);
    byId("confidence").textContent = s.emotion !== "paused" ?
      percent(s.confidence) + " · " + count(T.faces, s.faces) :
      s.privacy_hours ? fill(T.paused_hours, {hours: s.privacy_hours}) : T.paused_switch;
    showScores(s.scores || {});
    showSuggestion(s.suggestions);
    byId("health").textContent = fill(T.health, {fps: s.fps, camera: T.camera[s.camera] ||
      say(s.camera), model: s.model_version}) + (s.suggested_rotation == null ? "" :
      " · " + fill(T.turned, {rotation: s.suggested_rotation}));
    showPersonal(s.personal, s.emotion === "paused");
    if (configured === null) { configured = s.ignore_regions || []; showRegions(); }
  } catch (e) { byId("health").textContent = T.unreachable; }
}

function drawTimeline(h) {
  const svg = byId("timeline");
  const width = 600, height = 60, step = h.resolution / h.seconds * width;
  const counts = {};
  svg.replaceChildren();
  for (let minute = 60; minute < h.seconds; minute += 60) {  // a faint line each minute
    const line = document.createElementNS(SVG, "rect");
    line.setAttribute("x", (minute / h.seconds * width).toFixed(1));
    line.setAttribute("width", "0.6");
    line.setAttribute("height", height);
    line.setAttribute("fill", "#2a2f37");
    svg.append(line);
  }
  for (const [age, emotion, confidence] of h.samples) {
    counts[emotion] = (counts[emotion] || 0) + 1;
    const tall = QUIET.includes(emotion) ? 4 : Math.max(confidence, 0.15) * height;
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", ((h.seconds - age) / h.seconds * width - step).toFixed(1));
    bar.setAttribute("y", (height - tall).toFixed(1));
    bar.setAttribute("width", (step + 0.4).toFixed(1));
    bar.setAttribute("height", tall.toFixed(1));
    bar.setAttribute("fill", colour(emotion));
    bar.dataset.emotion = emotion;
    svg.append(bar);
  }
  const minutes = Math.round(h.seconds / 60);
  byId("mood-title").textContent = fill(T.mood_title, {window: count(T.window, minutes)});
  byId("start").textContent = fill(T.timeline_start, {n: minutes});
  const legend = byId("legend");
  legend.replaceChildren();
  const total = h.samples.length || 1;
  for (const [emotion, n] of Object.entries(counts).sort((a, b) => b[1] - a[1])) {
    const item = element("span", "■ " + say(emotion) + " " + percent(n / total));
    item.style.color = colour(emotion);
    legend.append(item);
  }
  const events = byId("events");
  events.replaceChildren();
  for (const e of h.events) {
    const text = clock(e.age) + "  " + say(e.previous) + " → " + say(e.emotion) + " " +
      percent(e.confidence) + (e.suggestion ? " · " + e.suggestion : "");
    events.append(element("li", text));
  }
}

// The mood diary: a bar per day, split by each emotion's share of the time a face was seen.
const duration = (s) =>
  s < 60 ? fill(T.seconds, {n: Math.round(s)}) : fill(T.minutes, {n: Math.round(s / 60)});

function drawDiary(d) {
  const svg = byId("diary");
  svg.replaceChildren();
  const width = 600, height = 80, slot = width / d.days.length;
  d.days.forEach((day, i) => {
    let top = height;
    for (const emotion of d.labels) {
      const share = day.shares[emotion] || 0;
      if (!share) continue;
      const bar = document.createElementNS(SVG, "rect");
      top -= share * height;
      bar.setAttribute("x", (i * slot + slot * 0.15).toFixed(1));
      bar.setAttribute("y", top.toFixed(1));
      bar.setAttribute("width", (slot * 0.7).toFixed(1));
      bar.setAttribute("height", (share * height).toFixed(1));
      bar.setAttribute("fill", colour(emotion));
      bar.dataset.emotion = emotion;
      bar.dataset.date = day.date;
      const title = document.createElementNS(SVG, "title");
      title.textContent = day.date + ": " + say(emotion) + " " + duration(day.seconds[emotion]);
      bar.append(title);
      svg.append(bar);
    }
  });
  // A weekday under each bar ("how was my week"), the date in its tooltip; one letter each
  // where two weeks of "Mon" would not fit (a phone).
  const weekday = byId("diary").clientWidth < 36 * d.days.length ? "narrow" : "short";
  byId("diary-days").replaceChildren(...d.days.map((day) => {
    const label = element("span", new Date(day.date + "T12:00").toLocaleDateString(
      LOCALE, {weekday}));
    label.title = day.date;
    return label;
  }));
  const today = d.days[d.days.length - 1];
  byId("diary-today").textContent = fill(T.today, {seen: duration(today.seen_seconds)}) +
    d.labels.filter((e) => today.shares[e]).map(
      (e) => " · " + say(e) + " " + percent(today.shares[e])).join("");
}

async function refreshDiary() {
  try {
    const d = await (await fetch("api/diary" + QUERY)).json();
    if (d.enabled) drawDiary(d); else byId("diary-box").hidden = true;
  } catch (e) {}
}

async function refreshHistory() {
  try { drawTimeline(await (await fetch("api/history" + QUERY)).json()); } catch (e) {}
}

// Parts of the picture whose faces are not read (a TV, a poster): the daemon draws the ones
// in its config hatched. Marking more here changes nothing on the device: the page drags out
// a rectangle on the video and writes the setting to copy, those in the config first.
let configured = null, marked = [], start = null;
const live = byId("live");
const share = (v) => Math.round(Math.min(Math.max(v, 0), 1) * 100) / 100;
function where(event) {
  const r = live.getBoundingClientRect();
  return [share((event.clientX - r.left) / r.width), share((event.clientY - r.top) / r.height)];
}

function showRegions() {
  byId("marks").replaceChildren(...marked.map(([left, top, w, h]) => {
    const mark = element("div", undefined, "mark");
    Object.assign(mark.style, {left: width(left), top: width(top), width: width(w),
      height: width(h)});
    return mark;
  }));
  byId("clear-marks").hidden = !marked.length;
  const regions = [...(configured || []), ...marked];
  byId("region-how").textContent = marked.length ? T.regions_set : "";
  byId("region-setting").textContent = marked.length ?
    "ignore_regions = " + JSON.stringify(regions).replaceAll(",", ", ") : "";
}

byId("mark").onclick = () => {
  live.classList.toggle("marking");
  byId("mark").textContent = live.classList.contains("marking") ? T.mark_done : T.mark;
};
byId("clear-marks").onclick = () => { marked = []; showRegions(); };
live.onpointerdown = (event) => {
  if (!live.classList.contains("marking")) return;
  event.preventDefault();
  start = where(event);
};
live.onpointerup = (event) => {
  if (!start) return;
  const end = where(event);
  const [left, top] = [Math.min(start[0], end[0]), Math.min(start[1], end[1])];
  const [w, h] = [share(Math.abs(end[0] - start[0])), share(Math.abs(end[1] - start[1]))];
  start = null;
  if (w >= 0.02 && h >= 0.02) marked.push([left, top, w, h]);  // not a stray click
  showRegions();
};
live.ondragstart = () => false;  // the picture is no file to drag away while marking

refresh(); setInterval(refresh, 1000);
refreshHistory(); setInterval(refreshHistory, 5000);
refreshDiary(); setInterval(refreshDiary, 60000);
"""

PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{t[title]}: {device}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body><main>
<div id="view"><img id="live" src="stream.mjpg{query}" alt="{t[video_alt]}"><div
 id="marks"></div></div>
<aside>
 <div class="box"><div class="muted">{t[emotion]}</div><div id="emotion" class="emotion">…</div>
  <div id="confidence" class="muted"></div></div>
 <div class="box"><div class="muted">{t[scores]}</div><div id="scores">–</div></div>
 <div class="box"><div class="muted">{t[suggestion]}</div><div id="suggestion">–</div>
  <button id="another">{t[another]}</button><button id="not-for-me">{t[not_for_me]}</button><button
  id="restore" hidden></button><div id="suggested" class="muted"></div></div>
 <div class="box"><div class="muted" id="fit-title">{t[fit_title]}</div>
  <div id="teach"></div><div id="taught"></div><div id="applied" class="muted"></div></div>
 <div class="box"><div class="muted">{t[regions_title]}</div>
  <button id="mark">{t[mark]}</button><button id="clear-marks" hidden>{t[clear_marks]}</button>
  <div id="region-how" class="muted"></div><div id="region-setting"></div></div>
 <div class="box muted" id="health"></div>
</aside>
<section class="box" id="mood">
 <div class="muted" id="mood-title">…</div>
 <svg id="timeline" viewBox="0 0 600 60" preserveAspectRatio="none" role="img"
  aria-label="{t[timeline_label]}"></svg>
 <div class="axis muted"><span id="start"></span><span>{t[now]}</span></div>
 <div id="legend"></div>
 <ul id="events"></ul>
</section>
<section class="box" id="diary-box">
 <div class="muted">{t[diary_title]}</div>
 <svg id="diary" viewBox="0 0 600 80" preserveAspectRatio="none" role="img"
  aria-label="{t[diary_label]}"></svg>
 <div class="days muted" id="diary-days"></div>
 <div id="diary-today"></div>
</section></main>
<script>const QUERY = "{query}"; const COLOURS = {colours};
const LANG = "{lang}"; const T = {words};</script>
<script>{script}</script></body></html>
"""


def _hex(bgr: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*reversed(bgr))


# The face boxes' colours, so the page and the video agree; states of the device get their own.
PAGE_COLOURS = json.dumps(
    {
        **{label: _hex(bgr) for label, bgr in COLOURS.items()},
        "none": "#9aa0a6",
        "no_face": "#5f6670",
        "paused": "#8e7cc3",
        "*": _hex(OTHER_COLOUR),
    }
)


def draw_overlay(result: FrameResult) -> np.ndarray:
    """An analysed frame with face boxes, labels and confidences drawn on a copy."""
    canvas = to_canvas(result.frame.image)
    for region in result.ignored_regions:
        draw_ignored(canvas, region)
    for track in result.tracks:
        best = int(np.argmax(track.scores))
        label = result.labels[best] if best < len(result.labels) else "?"
        draw_face(canvas, track.box, label, float(track.scores[best]), track.roll)
    banner = f"{result.emotion} {result.confidence:.0%}"
    cv2.putText(
        canvas, banner, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA
    )
    return canvas


def prometheus_metrics(app: EdgeApp, service: HTTPService | None = None) -> str:
    stats = app.stats()
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, value: Any, labels: str = "") -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{labels} {value}")

    metric("yuzug_up", "gauge", "1 while the daemon runs", 1)
    metric(
        "yuzug_fps", "gauge", "Frames analysed per second over the last 5 s", app.timer.recent_fps()
    )
    metric("yuzug_frames_analysed_total", "counter", "Frames analysed", stats["frames_analysed"])
    metric("yuzug_frames_captured_total", "counter", "Frames captured", stats["frames_captured"])
    metric(
        "yuzug_frames_dropped_total",
        "counter",
        "Frames overwritten before analysis",
        stats["frames_dropped"],
    )
    metric(
        "yuzug_faces_ignored_total",
        "counter",
        "Faces found in camera.ignore_regions and left out",
        stats["faces_ignored"],
    )
    metric(
        "yuzug_idle",
        "gauge",
        "1 while nobody is in view and frames are analysed at classifier.idle_fps",
        int(stats["idle"]),
    )
    metric(
        "yuzug_camera_errors_total",
        "counter",
        "Camera failures (each retried)",
        stats["camera_errors"],
    )
    metric(
        "yuzug_camera_ok",
        "gauge",
        "1 while the camera delivers frames",
        int(stats["camera"] == "ok"),
    )
    metric("yuzug_events_total", "counter", "Emotion change events", stats["events"])
    metric(
        "yuzug_model_reload_failures_total", "counter", "Refused model reloads", app.reload_failures
    )
    metric(
        "yuzug_model_info",
        "gauge",
        "The model bundle in use",
        1,
        f'{{version="{app.model_version}"}}',
    )
    mqtt = stats.get("mqtt")
    if mqtt is not None:
        metric(
            "yuzug_mqtt_connected",
            "gauge",
            "1 while connected to the broker",
            int(app.publisher is not None and app.publisher.connected.is_set()),
        )
        for key, kind in (
            ("events_published", "counter"),
            ("events_queued", "counter"),
            ("events_dropped", "counter"),
            ("events_pending", "gauge"),
            ("events_restored", "counter"),
            ("connects", "counter"),
            ("disconnects", "counter"),
            ("connect_failures", "counter"),
        ):
            name = f"yuzug_mqtt_{key}" + ("_total" if kind == "counter" else "")
            metric(name, kind, f"MQTT {key.replace('_', ' ')}", mqtt[key])
    if service is not None:
        metric("yuzug_http_viewers", "gauge", "Live streams being watched", service.viewers)
        for key, help_text in (
            ("viewers_refused", "Live streams refused at http.max_viewers"),
            ("frames_streamed", "Live-view frames sent, all viewers together"),
            ("frames_encoded", "Live-view frames drawn and JPEG-encoded"),
        ):
            metric(f"yuzug_http_{key}_total", "counter", help_text, getattr(service, key))
    lines.append("# HELP yuzug_stage_latency_seconds Time per pipeline stage and per frame")
    lines.append("# TYPE yuzug_stage_latency_seconds histogram")
    for stage, (counts, total_ms) in app.timer.histogram_snapshot().items():
        cumulative = 0
        for bound, count in zip((*BUCKETS_MS, float("inf")), counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else f"{bound / 1000:g}"
            lines.append(
                f'yuzug_stage_latency_seconds_bucket{{stage="{stage}",le="{le}"}} {cumulative}'
            )
        lines.append(f'yuzug_stage_latency_seconds_sum{{stage="{stage}"}} {total_ms / 1000:.6f}')
        lines.append(f'yuzug_stage_latency_seconds_count{{stage="{stage}"}} {cumulative}')
    return "\n".join(lines) + "\n"


class HTTPService:
    """Serves the live page, MJPEG stream, state, health and metrics for one app."""

    def __init__(self, app: EdgeApp, config: HTTPConfig) -> None:
        self.app = app
        self.config = config
        self.viewers = 0
        self.viewers_refused = 0
        self.frames_streamed = 0
        self.frames_encoded = 0
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._encoded: tuple[FrameResult | None, bytes] = (None, b"")
        self._paused_frames: dict[str, bytes] = {}  # per reason the camera is closed
        self.language = config.language or app.config.suggestions.language
        words = page_text(self.language)
        self._html_words = {key: html.escape(v) for key, v in words.items() if isinstance(v, str)}
        # All of them for the script, which composes most of the page; "</" cannot end it.
        self._script_words = json.dumps(words, ensure_ascii=False).replace("</", "<\\/")
        handler = type("Handler", (_Handler,), {"service": self})
        self.server = ThreadingHTTPServer((config.host, config.port), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        logger.info(
            "live view on http://%s:%d/%s",
            self.config.host,
            self.port,
            " (authentication required)" if self.auth_required else "",
        )

    def page(self, query: str) -> bytes:
        """The live page in ``self.language``; ``query`` (the viewer's ``?token=``) goes on
        every request it makes."""
        return PAGE.format(
            lang=self.language,
            t=self._html_words,
            words=self._script_words,
            device=self.app.config.device_id,
            query=query,
            style=STYLE,
            script=SCRIPT,
            colours=PAGE_COLOURS,
        ).encode()

    @property
    def auth_required(self) -> bool:
        return bool(self.config.token or self.config.username)

    def authorised(self, headers: Any, query: dict[str, list[str]]) -> bool:
        if not self.auth_required:
            return True
        header = headers.get("Authorization", "")
        if self.config.token is not None:
            token = self.config.token.get_secret_value()
            offered = query.get("token", [""])[0]
            if header.startswith("Bearer "):
                offered = header[7:]
            if offered and _same(offered, token):
                return True
        if self.config.username and self.config.password and header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return _same(user, self.config.username) and _same(
                password, self.config.password.get_secret_value()
            )
        return False

    def jpeg(self, result: FrameResult) -> bytes:
        """``result`` drawn and encoded; each result is encoded once for all viewers."""
        with self._encode_lock:
            encoded_for, data = self._encoded
            if encoded_for is not result:
                ok, jpeg = cv2.imencode(
                    ".jpg",
                    draw_overlay(result),
                    [cv2.IMWRITE_JPEG_QUALITY, self.config.stream_quality],
                )
                data = jpeg.tobytes() if ok else b""
                self._encoded = (result, data)
                self.frames_encoded += 1
            return data

    def showing(self) -> FrameResult | object | None:
        """What viewers see now: ``PAUSED`` while the camera is closed for privacy (no picture
        at all, not the last one before the pause, whatever frame the analysis may still have
        been finishing), else the last analysed frame; ``None`` before the first."""
        return PAUSED if self.app.paused.is_set() else self.app.last_result

    def picture(self, showing: FrameResult | object) -> bytes:
        """The JPEG for what :meth:`showing` returned."""
        if showing is PAUSED:
            return self.paused_jpeg()
        return self.jpeg(cast("FrameResult", showing))

    def paused_jpeg(self) -> bytes:
        """The frame viewers get while the camera is closed for privacy, in place of its own:
        a pause sign, and the privacy hours when they hold. No words: the page says why in
        its own language, and a still in Home Assistant reads the same in any."""
        hours = self.app.privacy_hours_closing or ""
        if hours not in self._paused_frames:
            canvas = np.full((480, 640, 3), 32, np.uint8)
            grey = (200, 200, 200)
            cv2.circle(canvas, (320, 210), 90, grey, 6, cv2.LINE_AA)
            for left in (282, 332):
                cv2.rectangle(canvas, (left, 165), (left + 26, 255), grey, -1, cv2.LINE_AA)
            # The spans alone ("22-7"), not the note on an unset clock, which is in English.
            span = hours.removesuffix(CLOCK_NOT_SET)
            font = cv2.FONT_HERSHEY_SIMPLEX
            (width, _), _ = cv2.getTextSize(span, font, 1.2, 2)
            cv2.putText(canvas, span, (320 - width // 2, 370), font, 1.2, grey, 2, cv2.LINE_AA)
            self._paused_frames[hours] = cv2.imencode(".jpg", canvas)[1].tobytes()
        return self._paused_frames[hours]

    def join_stream(self) -> bool:
        """Counts a new viewer in, unless ``max_viewers`` are already watching."""
        with self._lock:
            if self.viewers >= self.config.max_viewers:
                self.viewers_refused += 1
                return False
            self.viewers += 1
            return True

    def leave_stream(self) -> None:
        with self._lock:
            self.viewers -= 1

    def count_streamed(self) -> None:
        """One more frame sent to a viewer (each viewer's thread counts its own: under the
        lock, so that no count is lost)."""
        with self._lock:
            self.frames_streamed += 1

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    service: HTTPService
    server_version = "yuzug"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # The request line carries a browser's ?token=: no secret goes to the log.
        line = TOKEN_IN_QUERY.sub(r"\1********", format % args)
        logger.debug("http %s - %s", self.address_string(), line)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlparse(self.path)
        query = parse_qs(url.query)
        service = self.service
        if url.path == "/healthz":  # health stays open: systemd/monitoring probes carry no token
            health = service.app.health()
            self._send_json(
                health,
                HTTPStatus.OK if health["status"] == "ok" else HTTPStatus.SERVICE_UNAVAILABLE,
            )
            return
        if self._refused(query):
            return
        if url.path in ("/", "/index.html"):
            token = query.get("token", [""])[0]
            body = service.page(f"?token={quote(token, safe='')}" if token else "")
            self._send(body, "text/html; charset=utf-8")
        elif url.path == "/stream.mjpg":
            self._stream()
        elif url.path == "/snapshot.jpg":
            self._snapshot()
        elif url.path == "/api/state":
            self._send_json(service.app.view_state())
        elif url.path == "/api/history":
            self._send_json(service.app.history.snapshot(time.monotonic()))
        elif url.path == "/api/diary":
            self._send_json(service.app.diary_view())
        elif url.path == "/metrics":
            self._send(
                prometheus_metrics(service.app, service).encode(),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        """The page's commands: ``/api/personal`` (fit the model to the person in view) and
        ``/api/suggestion`` (another suggestion, not for me, bring them back); each answers
        with its box's new content."""
        url = urlparse(self.path)
        if self._refused(parse_qs(url.query)):
            return
        app = self.service.app
        commands = {
            "/api/personal": app.personal_command,
            "/api/suggestion": app.suggestion_command,
        }
        if url.path not in commands:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        # A form or a page on another site cannot send JSON here without a CORS preflight,
        # which this server never grants: a browser logged in with basic auth cannot be made
        # to record, or to dismiss suggestions, by another page.
        origin = self.headers.get("Origin")
        if origin and urlparse(origin).netloc != self.headers.get("Host"):
            self._send_json({"error": "cross-origin request refused"}, HTTPStatus.FORBIDDEN)
            return
        if self.headers.get_content_type() != "application/json":
            self._send_json({"error": "send application/json"}, HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= 4096:
                raise ValueError("a JSON object of at most 4 KiB")
            view = commands[url.path](json.loads(self.rfile.read(length)))
        except YuzugError as exc:  # well-formed, but not now: a recording already runs, say
            refusal = {"error": str(exc)}
            if isinstance(exc, CommandRefused):  # the page says it in its language
                refusal["code"] = exc.code
            self._send_json(refusal, HTTPStatus.CONFLICT)
            return
        except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
            self._send_json({"error": f"bad request: {exc}"}, HTTPStatus.BAD_REQUEST)
            return
        self._send_json(view, HTTPStatus.ACCEPTED)

    def _refused(self, query: dict[str, list[str]]) -> bool:
        """Answers 401 (and says so) when the request lacks the configured credentials."""
        if self.service.authorised(self.headers, query):
            return False
        self.send_response(HTTPStatus.UNAUTHORIZED)
        if self.service.config.username:
            self.send_header("WWW-Authenticate", 'Basic realm="yuzug"')
        self.end_headers()
        return True

    def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, data: dict[str, Any], status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(data).encode(), "application/json", status)

    def _snapshot(self) -> None:
        """The latest analysed frame as drawn for the live view, one JPEG: a still for Home
        Assistant's camera card or a notification. Paused: the paused picture, never the
        camera's."""
        service = self.service
        showing = service.showing()
        if showing is None:
            self._send(
                b"no analysed frame yet\n",
                "text/plain; charset=utf-8",
                HTTPStatus.SERVICE_UNAVAILABLE,
            )
            return
        self._send(service.picture(showing), "image/jpeg")

    def _stream(self) -> None:
        service = self.service
        if not service.join_stream():
            self._send(
                f"{service.config.max_viewers} viewers are already watching "
                "(http.max_viewers)\n".encode(),
                "text/plain; charset=utf-8",
                HTTPStatus.SERVICE_UNAVAILABLE,
            )
            return
        period = 1.0 / service.config.stream_fps
        # A viewer that stops reading (a suspended laptop) fills the socket buffer; without a
        # timeout its thread would block in write() and hold a viewer slot for good.
        self.connection.settimeout(STREAM_WRITE_TIMEOUT_S)
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            sent: object = None
            sent_at = 0.0
            while not service.app.stop_event.is_set():
                showing = service.showing()
                now = time.monotonic()
                again = showing is PAUSED and now - sent_at >= PAUSED_RESEND_S
                if showing is not None and (showing is not sent or again):
                    sent, sent_at = showing, now
                    data = service.picture(showing)
                    if data:
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(data)}\r\n\r\n".encode()
                            + data
                            + b"\r\n"
                        )
                        service.count_streamed()
                time.sleep(period)
        except OSError:
            pass  # the viewer went away or stopped reading (reset, broken pipe, timeout)
        finally:
            service.leave_stream()
