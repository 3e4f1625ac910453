// Parley's talk page: the microphone goes to the server over WebRTC, the bot's voice
// comes back on the same connection, and the server's events arrive on the "events"
// data channel (see docs/webrtc.md). Plain JavaScript, no build step.
"use strict";

const query = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

// Everything the page knows, reachable from the console (and from browser tests).
const state = {
  pc: null,
  session: null,
  events: [],
  latencies: [],
  connection: "idle",
  recording: null,
};
window.parley = state;

let userItem = null; // the user's turn being transcribed
let botItem = null; // the bot's reply being spoken

function setStatus(text) {
  $("status").textContent = text;
}

function addItem(kind, text) {
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = text;
  $("log").appendChild(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

function showLatency(ms) {
  state.latencies.push(ms);
  const sorted = [...state.latencies].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  $("lat-last").textContent = `${Math.round(ms)} ms`;
  $("lat-median").textContent = `${Math.round(median)} ms`;
  $("lat-turns").textContent = String(state.latencies.length);
  if (botItem) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = `${Math.round(ms)} ms`;
    botItem.badge = badge;
    botItem.appendChild(badge);
  }
}

function botSays(text) {
  if (!botItem) {
    botItem = addItem("bot", "");
    botItem.spoken = document.createElement("span");
    botItem.appendChild(botItem.spoken);
  }
  botItem.spoken.textContent = (botItem.spoken.textContent + " " + text).trim();
  if (botItem.badge) botItem.appendChild(botItem.badge);
}

const handlers = {
  ready() {
    setStatus("Listening: speak, and the bot answers.");
  },
  user_started() {
    $("user-dot").classList.add("on");
    userItem = null; // a new turn, and the bot's next words are a new reply
    botItem = null;
  },
  user_stopped() {
    $("user-dot").classList.remove("on");
  },
  transcript(e) {
    if (!e.text.trim()) return;
    // A turn can get more than one final transcript: one at a pause, then the whole
    // turn if the user went on. Each replaces the last until the turn is over.
    if (!userItem) userItem = addItem("user interim", "");
    userItem.textContent = e.text;
    if (e.final) userItem.className = "user";
  },
  bot_started() {
    $("bot-dot").classList.add("on");
  },
  bot_text(e) {
    userItem = null;
    botSays(e.text);
  },
  bot_heard(e) {
    if (botItem) botItem.heard = ((botItem.heard || "") + " " + e.text).trim();
  },
  bot_stopped(e) {
    $("bot-dot").classList.remove("on");
    if (!e.interrupted || !botItem) return;
    // Show what the user heard, and strike out what was cut off.
    const said = botItem.spoken.textContent;
    const heard = botItem.heard || "";
    const rest = said.startsWith(heard) ? said.slice(heard.length) : "";
    botItem.spoken.textContent = heard;
    if (rest.trim()) {
      const cut = document.createElement("span");
      cut.className = "unheard";
      cut.textContent = rest;
      botItem.spoken.appendChild(cut);
    }
    botItem = null;
  },
  latency(e) {
    showLatency(e.ms);
  },
  error(e) {
    addItem("error", `${e.processor}: ${e.message}`);
  },
};

function onEvent(message) {
  const event = JSON.parse(message.data);
  if (state.recording) event.rec_s = state.recording.seconds();
  state.events.push(event);
  const handler = handlers[event.type];
  if (handler) handler(event);
}

// A tap on the bot's audio for tests (?record): 16-bit PCM at the context's rate.
function recordRemote(stream) {
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(stream);
  const chunks = [];
  let total = 0;
  const tap = ctx.createScriptProcessor(4096, 1, 1);
  tap.onaudioprocess = (e) => {
    chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    total += e.inputBuffer.length;
  };
  source.connect(tap);
  tap.connect(ctx.destination);
  state.recording = {
    rate: ctx.sampleRate,
    seconds: () => total / ctx.sampleRate,
    take() {
      const pcm = new Int16Array(total);
      let i = 0;
      for (const c of chunks) for (const x of c) pcm[i++] = Math.max(-1, Math.min(1, x)) * 32767;
      let binary = "";
      const bytes = new Uint8Array(pcm.buffer);
      for (let k = 0; k < bytes.length; k += 0x8000) {
        binary += String.fromCharCode.apply(null, bytes.subarray(k, k + 0x8000));
      }
      return { rate: ctx.sampleRate, pcm: btoa(binary) };
    },
  };
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000); // host candidates are enough on a LAN
  });
}

async function negotiate(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const body = { sdp: pc.localDescription.sdp, type: "offer" };
  if (state.session) body.session = state.session;
  const response = await fetch("offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
  const answer = await response.json();
  state.session = answer.session;
  await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
}

async function start() {
  $("talk").disabled = true;
  setStatus("Asking for the microphone…");
  const aec = query.get("aec") !== "0";
  const mic = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: aec, noiseSuppression: aec, autoGainControl: aec },
  });
  const pc = new RTCPeerConnection();
  state.pc = pc;
  for (const track of mic.getTracks()) pc.addTrack(track, mic);
  const channel = pc.createDataChannel("events");
  channel.onmessage = onEvent;
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    $("bot-audio").srcObject = stream;
    if (query.has("record")) recordRemote(stream);
  };
  pc.onconnectionstatechange = () => {
    state.connection = pc.connectionState;
    if (pc.connectionState === "connected" && !state.events.some((e) => e.type === "ready")) {
      setStatus("Connected: the pipeline is starting…");
    }
    if (["failed", "closed", "disconnected"].includes(pc.connectionState)) {
      setStatus(`Connection ${pc.connectionState}. Press Talk to start again.`);
      stop();
    }
  };
  setStatus("Connecting…");
  await negotiate(pc);
  $("talk").textContent = "Hang up";
  $("talk").classList.add("live");
  $("talk").disabled = false;
}

function stop() {
  const pc = state.pc;
  state.pc = null;
  state.session = null;
  if (pc) {
    for (const sender of pc.getSenders()) if (sender.track) sender.track.stop();
    pc.close();
  }
  $("talk").textContent = "Talk";
  $("talk").classList.remove("live");
  $("talk").disabled = false;
  $("user-dot").classList.remove("on");
  $("bot-dot").classList.remove("on");
}

$("talk").addEventListener("click", () => {
  if (state.pc) {
    stop();
    setStatus("Hung up. Press Talk to start again.");
    return;
  }
  start().catch((err) => {
    setStatus(`Could not connect: ${err.message}`);
    stop();
  });
});
window.addEventListener("pagehide", () => stop());
