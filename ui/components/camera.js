// TL Studio's camera: getUserMedia -> <video> -> <canvas> -> JPEG, sent to Python in batches.
//
// mode "record": frames are taken while "Hold to record" is held (pointer events, touch as a
//   fallback), downscaled to a `side` px short side and JPEG-encoded here, and sent in batches:
//   one batch in flight at a time, the next one leaves when Python acknowledges the last
//   (data.ack), so no batch is lost when the server is slower than the camera.
// mode "live": one frame in flight at a time; frames taken while the server is busy are dropped,
//   never queued, so the answer is always about the latest picture.
// Texts come from Python in data.labels (set with textContent, never as HTML).

const instances = new WeakMap();
const BATCH_MAX = 24; // frames per message: 3 s at 8 frames/s, about 400 KB of JPEG as base64
const RESEND_MS = 8000; // an unacknowledged batch is sent again after this (Python drops repeats)

function fill(template, values) {
  return String(template || "").replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
}

class Camera {
  constructor(root) {
    this.root = root;
    this.q = (sel) => root.querySelector(sel);
    this.video = this.q(".tlcam-video");
    this.canvas = document.createElement("canvas");
    this.stream = null;
    this.facing = "user";
    this.deviceId = "";
    this.streamId = Math.random().toString(36).slice(2) + Date.now().toString(36);
    this.seq = 0;
    this.pending = []; // record: frames not yet sent
    this.inflight = null; // {seq, frames, sent} or, live, {seq, sent}
    this.taken = 0;
    this.recording = false;
    this.paused = false;
    this.timers = [];
    this.bind();
  }

  update(data, setTriggerValue) {
    const first = !this.data;
    this.data = data || {};
    this.send = setTriggerValue;
    this.labels = this.data.labels || {};
    this.mode = this.data.mode === "live" ? "live" : "record";
    this.texts();
    this.acknowledge(this.data.ack || {});
    if (first) this.start();
  }

  texts() {
    const L = this.labels;
    const hold = this.q(".tlcam-hold");
    hold.hidden = this.mode !== "record";
    hold.textContent = L.hold || "";
    const pause = this.q(".tlcam-pause");
    pause.hidden = this.mode !== "live";
    pause.textContent = this.paused ? L.resume || "" : L.pause || "";
    this.q(".tlcam-switch").textContent = L.switch || "";
    this.q(".tlcam-pick-text").textContent = L.pick || "";
  }

  bind() {
    const hold = this.q(".tlcam-hold");
    const start = (e) => { e.preventDefault(); this.startRecording(); };
    const stop = () => this.stopRecording();
    if (window.PointerEvent) {
      hold.addEventListener("pointerdown", (e) => {
        try { hold.setPointerCapture(e.pointerId); } catch (err) { /* synthetic events have no capture */ }
        start(e);
      });
      for (const name of ["pointerup", "pointercancel", "lostpointercapture"]) hold.addEventListener(name, stop);
    } else {
      hold.addEventListener("touchstart", start, { passive: false });
      hold.addEventListener("touchend", stop);
      hold.addEventListener("touchcancel", stop);
      hold.addEventListener("mousedown", start);
      hold.addEventListener("mouseup", stop);
    }
    hold.addEventListener("contextmenu", (e) => e.preventDefault()); // a long press must not open a menu
    this.q(".tlcam-pause").addEventListener("click", () => { this.paused = !this.paused; this.texts(); });
    this.q(".tlcam-switch").addEventListener("click", () => {
      this.facing = this.facing === "user" ? "environment" : "user";
      this.deviceId = "";
      this.start();
    });
    this.q(".tlcam-pick").addEventListener("change", (e) => { this.deviceId = e.target.value; this.start(); });
    this.timers.push(setInterval(() => this.tick(), 100));
    // Live frames stop the moment the user follows a link to another page. A frame sent after
    // that click reaches the server behind the page switch; Streamlit 1.67 then runs this page's
    // fragment for it after the new page and the browser shows the new page blank
    // (tests/test_browser_camera.py). Recorded batches are never dropped: live mode only.
    this.onLeave = (e) => {
      const link = e.type === "click" && e.target.closest ? e.target.closest("a[href]") : null;
      if (e.type === "click" && (!link || link.target === "_blank")) return;
      if (link && new URL(link.href, location.href).pathname === location.pathname) return;
      this.left = { at: performance.now(), from: location.pathname };
    };
    document.addEventListener("click", this.onLeave, true); // capture: before Streamlit's own handler
    window.addEventListener("popstate", this.onLeave);
  }

  leaving() {
    if (!this.left) return false;
    if (location.pathname !== this.left.from) return true; // gone: silent until unmounted
    if (performance.now() - this.left.at < 5000) return true; // the switch is on its way
    this.left = null; // the click did not change the page after all
    return false;
  }

  message(text) {
    const m = this.q(".tlcam-message");
    m.textContent = text || "";
    m.hidden = !text;
  }

  status(text) { this.q(".tlcam-status").textContent = text || ""; }

  async start() {
    this.stopTracks();
    const L = this.labels;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.message(L.insecure);
      return;
    }
    const video = this.deviceId ? { deviceId: { exact: this.deviceId } } : { facingMode: { ideal: this.facing } };
    video.width = { ideal: 640 };
    video.height = { ideal: 480 };
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    } catch (err) {
      const name = err && err.name;
      if (name === "NotAllowedError" || name === "SecurityError") this.message(L.denied);
      else if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError")
        this.message(L.absent);
      else this.message(fill(L.failed, { detail: (err && err.message) || name || "?" }));
      return;
    }
    this.message("");
    this.video.srcObject = this.stream;
    for (const track of this.stream.getVideoTracks()) {
      track.addEventListener("ended", () => this.lost());
    }
    try { await this.video.play(); } catch (err) { /* autoplay is muted: play() only fails if unmounted */ }
    this.listCameras();
  }

  async listCameras() {
    const pick = this.q(".tlcam-pick");
    let cams = [];
    try {
      cams = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
    } catch (err) { cams = []; }
    const current = this.stream && this.stream.getVideoTracks()[0];
    const currentId = current && current.getSettings ? current.getSettings().deviceId : "";
    pick.textContent = "";
    cams.forEach((d, i) => {
      const opt = document.createElement("option");
      opt.value = d.deviceId;
      opt.textContent = d.label || `${this.labels.pick || ""} ${i + 1}`;
      opt.selected = d.deviceId === currentId;
      pick.appendChild(opt);
    });
    this.q(".tlcam-pick-label").hidden = cams.length < 2;
  }

  lost() {
    // the camera was unplugged or taken away: what was recorded is still sent
    this.stopRecording();
    this.message(this.labels.lost);
  }

  stopTracks() {
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
  }

  grab() {
    const v = this.video;
    if (!this.stream || v.readyState < 2 || !v.videoWidth) return null;
    const side = this.data.side || 256;
    const scale = side / Math.min(v.videoWidth, v.videoHeight);
    this.canvas.width = Math.max(1, Math.round(v.videoWidth * scale));
    this.canvas.height = Math.max(1, Math.round(v.videoHeight * scale));
    this.canvas.getContext("2d").drawImage(v, 0, 0, this.canvas.width, this.canvas.height);
    return this.canvas.toDataURL("image/jpeg", this.data.quality || 0.85).split(",")[1];
  }

  startRecording() {
    if (this.recording || this.mode !== "record") return;
    this.recording = true;
    this.q(".tlcam-hold").classList.add("recording");
    const take = () => {
      const frame = this.grab();
      if (frame) { this.pending.push(frame); this.taken += 1; }
      this.status(fill(this.labels.recording, { n: this.taken }));
    };
    take();
    this.recordTimer = setInterval(take, 1000 / (this.data.fps || 8));
  }

  stopRecording() {
    if (!this.recording) return;
    this.recording = false;
    clearInterval(this.recordTimer);
    this.q(".tlcam-hold").classList.remove("recording");
    this.flush();
  }

  acknowledge(ack) {
    if (this.inflight && ack.stream === this.streamId && ack.seq >= this.inflight.seq) {
      this.inflight = null;
      if (this.mode === "live") this.live(); // the next picture at once: no wait for the next tick
      else this.flush();
    }
  }

  flush() {
    if (!this.send) return;
    const now = performance.now();
    if (this.inflight && now - this.inflight.sent > RESEND_MS) {
      this.inflight.sent = now; // no answer yet (a rerun lost it?): the same batch again
      this.emit(this.inflight);
      return;
    }
    if (this.inflight || this.mode !== "record" || !this.pending.length) return;
    // while held, batches leave about once a second; on release, at once
    if (this.recording && this.pending.length < (this.data.fps || 8)) return;
    this.seq += 1;
    this.inflight = { seq: this.seq, frames: this.pending.splice(0, BATCH_MAX), sent: now };
    this.emit(this.inflight);
    if (!this.recording && !this.pending.length) this.status(this.labels.sending);
  }

  emit(batch) {
    const event = this.mode === "live" ? "frame" : "frames";
    this.send(event, { stream: this.streamId, seq: batch.seq, frames: batch.frames });
  }

  tick() {
    if (this.mode === "record") {
      this.flush();
      if (!this.recording && !this.inflight && !this.pending.length && this.taken) this.status("");
      return;
    }
    this.live();
  }

  live() {
    if (this.inflight && performance.now() - this.inflight.sent > RESEND_MS) this.inflight = null; // dropped
    if (this.paused || this.inflight || !this.send || this.leaving()) return;
    const frame = this.grab(); // the latest picture; the ones taken while waiting were never kept
    if (!frame) return;
    this.seq += 1;
    this.inflight = { seq: this.seq, frames: [frame], sent: performance.now() };
    this.emit(this.inflight);
  }

  stop() {
    document.removeEventListener("click", this.onLeave, true);
    window.removeEventListener("popstate", this.onLeave);
    this.stopRecording();
    for (const t of this.timers) clearInterval(t);
    this.stopTracks();
  }
}

export default function (component) {
  const { parentElement, data, setTriggerValue } = component;
  // Streamlit calls this again whenever `data` changes (each acknowledgement): the camera,
  // its stream and its frames live on, one per mounted element
  let cam = instances.get(parentElement);
  if (!cam) {
    cam = new Camera(parentElement);
    instances.set(parentElement, cam);
  }
  cam.update(data, setTriggerValue);
  return () => {
    cam.stop();
    instances.delete(parentElement);
  };
}
