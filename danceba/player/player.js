// danceba player: the dances of one piece side by side, on one clock, with the piece's music.
//
// The clock is the <audio> element's currentTime while the music plays (a performance.now() clock
// without music, or past its end); every dance shows its frame round(fps * t). Joints of .npz dances come
// from the server as float32 (T, 24, 3); .bvh dances are parsed here by three.js's BVHLoader and their
// joints are the loaded bones' world positions. window.danceba holds test hooks that read what is drawn
// (the meshes' transforms), not the data that was sent. The self-contained report (danceba/html_report.py)
// is this page with the server's answers written into it (#danceba-embedded): then nothing is fetched.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { BVHLoader } from 'three/addons/loaders/BVHLoader.js';
import { CSS2DObject, CSS2DRenderer } from 'three/addons/renderers/CSS2DRenderer.js';

const COLORS = ['#ff7a45', '#3fb8ff', '#7ee081', '#f5d547', '#d98cff', '#ff5c8a', '#4de0d0', '#c8c8c8'];
const BACKGROUND = '#15181d';
const JOINT_RADIUS = 0.032;
const BONE_RADIUS = 0.016;
const FLOOR_TOLERANCE_M = 0.1; // a dance whose feet rest further from y = 0 gets its floor at its feet
const TIMELINE_SPAN_S = 20; // longer pieces scroll under the playhead
const J = 24;
const UP = new THREE.Vector3(0, 1, 0);
const $ = (id) => document.getElementById(id);

const state = { catalog: null, piece: null, figures: [], duration: 0, musicBeats: null, token: 0 };
let dirty = true;

// ------------------------------------------------------------------------------------------ scene

const stage = $('stage');
const renderer = new THREE.WebGLRenderer({ antialias: true });
renderer.setPixelRatio(window.devicePixelRatio);
stage.prepend(renderer.domElement);
const labelRenderer = new CSS2DRenderer();
labelRenderer.domElement.className = 'labels';
stage.append(labelRenderer.domElement);

const scene = new THREE.Scene();
scene.background = new THREE.Color(BACKGROUND);
scene.add(new THREE.HemisphereLight(0xffffff, 0x30343c, 2.0));
const sun = new THREE.DirectionalLight(0xffffff, 1.8);
sun.position.set(2, 6, 5);
scene.add(sun);
const camera = new THREE.PerspectiveCamera(40, 1, 0.05, 500);
const controls = new OrbitControls(camera, renderer.domElement);
controls.enableDamping = true;
controls.addEventListener('change', () => { dirty = true; });

function resize() {
  const width = stage.clientWidth;
  const height = stage.clientHeight;
  renderer.setSize(width, height);
  labelRenderer.setSize(width, height);
  camera.aspect = width / Math.max(height, 1);
  camera.updateProjectionMatrix();
  const timeline = $('timeline');
  timeline.width = Math.round(timeline.clientWidth * window.devicePixelRatio);
  timeline.height = Math.round(timelineHeight() * window.devicePixelRatio);
  timeline.style.height = `${timelineHeight()}px`;
  dirty = true;
}

function render() {
  renderer.render(scene, camera);
  labelRenderer.render(scene, camera);
  dirty = false;
}

// ------------------------------------------------------------------------------------------ a dancer

class Figure {
  // One dance drawn as 24 spheres and 23 cylinders in its own group (moved sideways to its slot).
  constructor(dance, frames, color, parents, names) {
    this.dance = dance;
    this.frames = frames; // Float32Array (T * 24 * 3)
    this.nFrames = frames.length / (J * 3);
    this.fps = dance.fps;
    this.color = color;
    this.motionBeats = dance.motion_beats;
    this.frame = -1;
    this.group = new THREE.Group();
    this.group.name = dance.label;
    const material = new THREE.MeshStandardMaterial({ color, roughness: 0.55, metalness: 0.05 });
    const sphere = new THREE.SphereGeometry(JOINT_RADIUS, 16, 12);
    const cylinder = new THREE.CylinderGeometry(BONE_RADIUS, BONE_RADIUS, 1, 10); // axis y, length 1
    this.joints = names.map((name) => {
      const joint = new THREE.Mesh(sphere, material);
      joint.name = name;
      this.group.add(joint);
      return joint;
    });
    this.bones = [];
    parents.forEach((parent, child) => {
      if (parent < 0) return;
      const bone = new THREE.Mesh(cylinder, material);
      bone.userData = { parent, child };
      this.bones.push(bone);
      this.group.add(bone);
    });
    this.measure();
    this.grid = null;
    const label = document.createElement('div');
    label.className = 'figure-label';
    label.textContent = dance.label;
    label.style.color = color;
    this.label = new CSS2DObject(label);
    this.group.add(this.label);
  }

  measure() {
    // Where the dancer is over the whole dance: mean root (x, z), x/z extent, the floor under its feet.
    const f = this.frames;
    const lowest = new Float32Array(this.nFrames);
    let cx = 0, cz = 0, x0 = Infinity, x1 = -Infinity, z0 = Infinity, z1 = -Infinity;
    for (let k = 0; k < this.nFrames; k++) {
      cx += f[k * J * 3];
      cz += f[k * J * 3 + 2];
      let low = Infinity;
      for (let j = 0; j < J; j++) {
        const i = (k * J + j) * 3;
        x0 = Math.min(x0, f[i]); x1 = Math.max(x1, f[i]);
        z0 = Math.min(z0, f[i + 2]); z1 = Math.max(z1, f[i + 2]);
        low = Math.min(low, f[i + 1]);
      }
      lowest[k] = low;
    }
    this.centre = { x: cx / this.nFrames, z: cz / this.nFrames };
    this.extent = { x: x1 - x0, z: z1 - z0 };
    const feet = lowest.sort()[Math.floor(this.nFrames / 2)]; // median height of the lowest joint
    this.floorY = Math.abs(feet) <= FLOOR_TOLERANCE_M ? 0 : feet;
    this.floorNote = this.floorY === 0 ? '' :
      `floor drawn at its feet, ${Math.abs(feet).toFixed(2)} m ${feet < 0 ? 'below' : 'above'} y = 0`;
  }

  placeFloor(size) {
    // A square floor tile of the slot's width under the dancer (0.25 m squares).
    if (this.grid) this.group.remove(this.grid);
    const divisions = Math.max(4, Math.round(size * 4));
    this.grid = new THREE.GridHelper(size, divisions, 0x59606c, 0x2f353e);
    this.grid.position.set(this.centre.x, this.floorY, this.centre.z);
    this.group.add(this.grid);
  }

  frameAt(t) {
    return Math.min(this.nFrames - 1, Math.max(0, Math.round(t * this.fps)));
  }

  show(t) {
    const k = this.frameAt(t);
    if (k !== this.frame) this.setFrame(k);
    return k;
  }

  setFrame(k) {
    const f = this.frames;
    const base = k * J * 3;
    this.joints.forEach((mesh, j) => mesh.position.set(f[base + 3 * j], f[base + 3 * j + 1], f[base + 3 * j + 2]));
    const direction = new THREE.Vector3();
    for (const bone of this.bones) {
      const a = this.joints[bone.userData.parent].position;
      const b = this.joints[bone.userData.child].position;
      direction.subVectors(b, a);
      const length = direction.length();
      bone.position.addVectors(a, b).multiplyScalar(0.5);
      bone.scale.set(1, Math.max(length, 1e-6), 1);
      if (length > 1e-9) bone.quaternion.setFromUnitVectors(UP, direction.divideScalar(length));
    }
    const head = this.joints[15].position;
    this.label.position.set(head.x, head.y + 0.28, head.z);
    this.frame = k;
    dirty = true;
  }

  local(object, point = new THREE.Vector3()) {
    // A drawn point in the dance's own coordinates: world position minus the group's (slot) origin.
    this.group.updateMatrixWorld(true);
    return object.localToWorld(point).sub(this.group.getWorldPosition(new THREE.Vector3()));
  }

  drawnJoints() {
    return this.joints.map((mesh) => this.local(mesh).toArray());
  }

  drawnBones() {
    // Each cylinder's end centres (geometry y = -0.5, +0.5), as [parent, child, from xyz, to xyz].
    return this.bones.map((bone) => [bone.userData.parent, bone.userData.child,
      this.local(bone, new THREE.Vector3(0, -0.5, 0)).toArray(), this.local(bone, new THREE.Vector3(0, 0.5, 0)).toArray()]);
  }

  setVisible(visible) {
    for (const mesh of [...this.joints, ...this.bones]) mesh.visible = visible;
    dirty = true;
  }

  dispose() {
    this.joints[0].geometry.dispose();
    this.bones[0].geometry.dispose();
    this.joints[0].material.dispose();
    this.grid.geometry.dispose();
    this.grid.material.dispose();
    scene.remove(this.group); // removes the label's element too
  }
}

function layout(figures) {
  // Slots along x, spaced by the widest dance; each dance keeps its own motion, centred on its slot.
  const spacing = Math.max(1.5, ...figures.map((f) => f.extent.x + 0.6));
  figures.forEach((figure, i) => {
    const slot = (i - (figures.length - 1) / 2) * spacing;
    figure.group.position.set(slot - figure.centre.x, 0, -figure.centre.z);
    figure.placeFloor(Math.max(spacing, figure.extent.z + 0.6));
    scene.add(figure.group);
  });
  return spacing * figures.length;
}

function frameCamera() {
  const figures = state.figures;
  if (!figures.length) return;
  const width = state.sceneWidth;
  const floor = figures.reduce((sum, f) => sum + f.floorY, 0) / figures.length;
  const tanHalf = Math.tan(THREE.MathUtils.degToRad(camera.fov / 2));
  const distance = 1.15 * Math.max(1.3 / tanHalf, width / 2 / (tanHalf * camera.aspect), 3);
  controls.target.set(0, floor + 0.9, 0);
  camera.position.set(0, floor + 1.5, distance);
  controls.update();
  dirty = true;
}

// ------------------------------------------------------------------------------------------ loading

// The report's answers, by URL: {json: {url: payload}, bytes: {url: base64}}; null under `danceba view`.
const embeddedData = document.getElementById('danceba-embedded');
const embedded = embeddedData && JSON.parse(embeddedData.textContent);

function embeddedResponse(url) {
  if (url in embedded.json) return new Response(JSON.stringify(embedded.json[url]));
  if (url in embedded.bytes) return new Response(Uint8Array.from(atob(embedded.bytes[url]), (c) => c.charCodeAt(0)));
  return new Response(JSON.stringify({ error: 'not in this report' }), { status: 404, statusText: 'Not Found' });
}

async function fetchOk(url, options) {
  const response = embedded ? embeddedResponse(url) : await fetch(url, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).error; } catch { /* not JSON */ }
    throw new Error(`${url}: ${response.status} ${detail}`);
  }
  return response;
}

const fetchJson = async (url, options) => (await fetchOk(url, options)).json();
const fetchFloat32 = async (url) => new Float32Array(await (await fetchOk(url)).arrayBuffer());

async function bvhJoints(url, names) {
  // Parse with three.js's BVHLoader, then pose its skeleton at every keyframe of the loaded clip and read
  // the 24 SMPL bones' world positions: Float32Array (T * 24 * 3).
  const text = await (await fetchOk(url)).text();
  const { skeleton, clip } = new BVHLoader().parse(text);
  const holder = new THREE.Group();
  holder.add(skeleton.bones[0]);
  const byName = new Map(skeleton.bones.filter((b) => b.name !== 'ENDSITE').map((b) => [b.name, b]));
  const bones = names.map((name) => {
    if (!byName.has(name)) throw new Error(`${url}: the BVH has no joint ${name}`);
    return byName.get(name);
  });
  const tracks = clip.tracks.map((track) => {
    const [bone, property] = track.name.split('.');
    return { bone: byName.get(bone), property, values: track.values };
  });
  const nFrames = clip.tracks[0].times.length;
  const frames = new Float32Array(nFrames * J * 3);
  const point = new THREE.Vector3();
  for (let k = 0; k < nFrames; k++) {
    for (const { bone, property, values } of tracks) {
      if (property === 'position') bone.position.fromArray(values, 3 * k);
      else bone.quaternion.fromArray(values, 4 * k);
    }
    holder.updateMatrixWorld(true);
    bones.forEach((bone, j) => bone.getWorldPosition(point).toArray(frames, (k * J + j) * 3));
  }
  return frames;
}

function waitForAudio(audio) {
  // Resolves when the music's length is known (or it failed, or 10 s passed).
  return new Promise((resolve) => {
    if (audio.readyState >= 1) return resolve(true);
    const done = (ok) => { audio.removeEventListener('loadedmetadata', yes); audio.removeEventListener('error', no); resolve(ok); };
    const yes = () => done(true);
    const no = () => done(false);
    audio.addEventListener('loadedmetadata', yes);
    audio.addEventListener('error', no);
    setTimeout(() => done(audio.readyState >= 1), 10000);
  });
}

async function loadPiece(name) {
  const token = ++state.token;
  window.danceba.ready = false;
  clock.pause();
  setStatus(`loading ${name} …`);
  const piece = await fetchJson(`/api/piece?name=${encodeURIComponent(name)}`);
  const { parents, joint_names: names } = state.catalog;
  const frames = await Promise.all(piece.dances.map((d) => (d.kind === 'bvh' ? bvhJoints(d.url, names) : fetchFloat32(d.url))));
  const audio = $('audio');
  if (piece.music.url) audio.src = piece.music.url; else audio.removeAttribute('src');
  audio.load();
  const playable = piece.music.url ? await waitForAudio(audio) : false;
  if (token !== state.token) return; // another piece was asked for meanwhile

  state.figures.forEach((f) => f.dispose());
  state.piece = piece;
  state.figures = piece.dances.map((d, i) => new Figure(d, frames[i], COLORS[d.track % COLORS.length], parents, names));
  state.sceneWidth = layout(state.figures);
  state.musicBeats = null;
  clock.attach(playable ? audio : null);
  updatePlayButton();
  const danceLength = Math.max(...state.figures.map((f) => (f.nFrames - 1) / f.fps));
  state.duration = Math.max(danceLength, playable ? audio.duration : 0);
  $('seek').max = state.duration;
  $('seek').step = 1 / Math.max(...state.figures.map((f) => f.fps));
  showMusic(piece, playable);
  showLegend();
  resize();
  frameCamera();
  seek(0);
  history.replaceState(null, '', `#piece=${encodeURIComponent(name)}`);
  $('piece').value = name;
  setStatus('');
  window.danceba.ready = true;
  loadBeats(piece, token).catch(fail);
}

async function loadBeats(piece, token) {
  // Motion beats of BVH dances (from the joints drawn here) and the music beats; the timeline fills in.
  await Promise.all(state.figures.map(async (figure) => {
    if (figure.motionBeats !== null) return;
    const body = figure.frames.buffer;
    figure.motionBeats = (await fetchJson('/api/motion-beats', { method: 'POST', body })).beats;
  }));
  drawTimeline(clock.now());
  if (!piece.music.url) return;
  setStatus('computing music beats …');
  const result = await fetchJson(`/api/music-beats?piece=${encodeURIComponent(piece.name)}`);
  if (token !== state.token) return;
  state.musicBeats = result.beats === null ? null : result.beats.map((frame) => frame / result.fps);
  setStatus(result.beats === null ? `music beats: ${result.error}` : '');
  drawTimeline(clock.now());
}

// ------------------------------------------------------------------------------------------ clock

class Clock {
  // The audio element is the clock while it plays; performance.now() without music or past its end.
  constructor() { this.audio = null; this.playing = false; this.t = 0; this.wall = 0; this.onAudio = false; this.rate = 1; }

  attach(audio) { this.pause(); this.audio = audio; this.t = 0; if (audio) audio.playbackRate = this.rate; }

  audioLength() { return this.audio && Number.isFinite(this.audio.duration) ? this.audio.duration : 0; }

  now() {
    if (!this.playing) return this.t;
    if (this.onAudio) {
      if (!this.audio.ended && this.audio.currentTime < this.audioLength()) return this.audio.currentTime;
      this.onAudio = false; // the music ended before the dances: go on without it
      this.t = this.audioLength();
      this.wall = performance.now();
    }
    return this.t + ((performance.now() - this.wall) / 1000) * this.rate;
  }

  seek(t) {
    this.t = t;
    this.wall = performance.now();
    this.onAudio = this.audio !== null && t < this.audioLength();
    if (!this.audio) return;
    if (this.onAudio) this.audio.currentTime = t;
    if (this.playing && this.onAudio) this.startAudio();
    else this.audio.pause();
  }

  play() { this.playing = true; this.seek(this.t); }

  pause() {
    this.t = this.now();
    this.playing = false;
    if (this.audio) this.audio.pause();
  }

  setRate(rate) {
    this.t = this.now();
    this.wall = performance.now();
    this.rate = rate;
    if (this.audio) this.audio.playbackRate = rate;
  }

  startAudio() {
    this.audio.play().catch((error) => {
      if (error.name === 'AbortError') return; // a seek or pause interrupted it
      this.pause();
      updatePlayButton();
      showMessage(`the browser did not start the music (${error.message}); press Play`);
    });
  }
}

const clock = new Clock();

function seek(t) {
  t = Math.min(Math.max(Number(t) || 0, 0), state.duration);
  clock.seek(t);
  showTime(t);
}

function play() {
  if (!state.figures.length) return;
  if (clock.now() >= state.duration) clock.seek(0);
  clock.play();
  updatePlayButton();
}

function pause() {
  clock.pause();
  showTime(clock.now());
  updatePlayButton();
}

// ------------------------------------------------------------------------------------------ page

function formatTime(t) {
  const minutes = Math.floor(t / 60);
  return `${minutes}:${(t - 60 * minutes).toFixed(2).padStart(5, '0')}`;
}

function showTime(t) {
  const frames = state.figures.map((f) => f.show(t));
  if (!seekDragging) $('seek').value = t;
  $('clock').textContent = `${formatTime(t)} / ${formatTime(state.duration)}`;
  $('frame').textContent = frames.length ? `frame ${frames[0]}` : '';
  drawTimeline(t);
}

function updatePlayButton() {
  $('play').textContent = clock.playing ? 'Pause' : 'Play';
}

function setStatus(text) { $('status').textContent = text; }

function showMessage(text) {
  const box = $('message');
  box.textContent = text;
  box.hidden = !text;
  if (text) window.danceba.error = text;
}

function showMusic(piece, playable) {
  const music = piece.music;
  $('music-info').textContent = music.url === null ? `no music file for ${music.id}: silent clock` :
    playable ? `♪ ${music.file}` : `♪ ${music.file} cannot be played by this browser: silent clock`;
}

function showLegend() {
  const legend = $('legend');
  legend.replaceChildren(...state.figures.map((figure) => {
    const d = figure.dance;
    const row = document.createElement('div');
    row.className = 'dance';
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = figure.color;
    const text = (className, content) => Object.assign(document.createElement('span'), { className, textContent: content });
    const notes = [d.note, figure.floorNote].filter(Boolean).join('; ');
    row.append(swatch, text('label', d.label), text('meta', `${d.file} · ${figure.nFrames} frames at ${figure.fps} fps`));
    if (notes) row.append(text('note', notes));
    return row;
  }));
}

function fillPieces() {
  const select = $('piece');
  select.replaceChildren(...state.catalog.pieces.map((piece) => {
    const n = piece.tracks.length;
    const text = `${piece.name} (${n} dance${n > 1 ? 's' : ''}${piece.music ? '' : ', no music'})`;
    return new Option(text, piece.name);
  }));
}

// ------------------------------------------------------------------------------------------ timeline

const ROW = 22;
const AXIS = 18;
const LABEL_W = 150;
const timelineHeight = () => ROW * (1 + Math.max(state.figures.length, 1)) + AXIS;

function timelineView(t) {
  const span = state.duration <= 1.5 * TIMELINE_SPAN_S ? state.duration : TIMELINE_SPAN_S;
  const start = Math.min(Math.max(t - 0.25 * span, 0), Math.max(state.duration - span, 0));
  return { start, span: Math.max(span, 1e-6) };
}

function timelineX(t, view) {
  const width = $('timeline').clientWidth - LABEL_W - 10;
  return LABEL_W + ((t - view.start) / view.span) * width;
}

function drawTimeline(t) {
  const canvas = $('timeline');
  const g = canvas.getContext('2d');
  const scale = window.devicePixelRatio;
  g.setTransform(scale, 0, 0, scale, 0, 0);
  const width = canvas.clientWidth;
  const height = timelineHeight();
  g.fillStyle = '#1d2128';
  g.fillRect(0, 0, width, height);
  if (!state.figures.length) return;
  const view = timelineView(t);
  const visible = (s) => s >= view.start && s <= view.start + view.span;
  g.font = '12px system-ui, sans-serif';
  g.textBaseline = 'middle';
  const rows = [{ label: 'music beats', color: '#ffd166', beats: state.musicBeats }, ...state.figures.map((f) => (
    { label: f.dance.label, color: f.color, beats: f.motionBeats && f.motionBeats.map((k) => k / f.fps) }))];
  for (const beat of state.musicBeats || []) { // faint guides through every row
    if (!visible(beat)) continue;
    g.fillStyle = 'rgba(255, 209, 102, 0.18)';
    g.fillRect(Math.round(timelineX(beat, view)) - 0.5, ROW, 1, rows.length * ROW - ROW);
  }
  rows.forEach((row, r) => {
    const y = r * ROW;
    g.fillStyle = r % 2 ? '#21262e' : '#1a1e24';
    g.fillRect(0, y, LABEL_W - 6, ROW);
    g.fillStyle = row.color;
    g.fillText(row.label.length > 20 ? `${row.label.slice(0, 19)}…` : row.label, 8, y + ROW / 2);
    if (row.beats === null) {
      g.fillStyle = '#6b7480';
      g.fillText(r === 0 && !state.piece.music.url ? 'no music' : 'computing …', LABEL_W, y + ROW / 2);
      return;
    }
    g.fillStyle = row.color;
    for (const beat of row.beats) if (visible(beat)) g.fillRect(Math.round(timelineX(beat, view)) - 1, y + 4, 2, ROW - 8);
  });
  g.fillStyle = '#9aa3ad';
  const step = view.span > 60 ? 10 : view.span > 12 ? 2 : 1;
  for (let s = Math.ceil(view.start / step) * step; s <= view.start + view.span; s += step) {
    const x = timelineX(s, view);
    g.fillRect(Math.round(x), height - AXIS, 1, 4);
    g.fillText(`${s}s`, x + 2, height - AXIS / 2 + 2);
  }
  g.fillStyle = '#ffffff';
  g.fillRect(Math.round(timelineX(t, view)) - 1, 0, 2, height - AXIS);
}

function timelineSeek(event) {
  const rect = $('timeline').getBoundingClientRect();
  const x = event.clientX - rect.left;
  if (x < LABEL_W) return;
  const view = timelineView(clock.now());
  seek(view.start + ((x - LABEL_W) / (rect.width - LABEL_W - 10)) * view.span);
}

// ------------------------------------------------------------------------------------------ events

let seekDragging = false;
$('play').addEventListener('click', () => (clock.playing ? pause() : play()));
$('seek').addEventListener('pointerdown', () => { seekDragging = true; });
window.addEventListener('pointerup', () => { seekDragging = false; });
window.addEventListener('pointercancel', () => { seekDragging = false; });
$('seek').addEventListener('input', (event) => seek(event.target.value));
$('rate').addEventListener('change', (event) => clock.setRate(Number(event.target.value)));
$('reset-view').addEventListener('click', frameCamera);
$('piece').addEventListener('change', (event) => loadPiece(event.target.value).catch(fail));
$('timeline').addEventListener('pointerdown', (event) => {
  event.target.setPointerCapture(event.pointerId);
  timelineSeek(event);
});
$('timeline').addEventListener('pointermove', (event) => { if (event.buttons) timelineSeek(event); });
document.addEventListener('keydown', (event) => {
  const target = event.target;
  const onRange = target.tagName === 'INPUT' && target.type === 'range';
  if (['SELECT', 'BUTTON', 'INPUT'].includes(target.tagName) && !(onRange && event.key === ' ')) return;
  if (event.key === ' ') {
    event.preventDefault();
    if (clock.playing) pause(); else play();
  } else if (event.key === 'ArrowLeft' || event.key === 'ArrowRight') {
    const step = event.shiftKey ? 1 : 1 / (state.figures[0]?.fps || 60);
    pause();
    seek(clock.now() + (event.key === 'ArrowLeft' ? -step : step));
  }
});
new ResizeObserver(resize).observe(stage);

function tick() {
  requestAnimationFrame(tick);
  if (clock.playing) {
    let t = clock.now();
    if (t >= state.duration) {
      if ($('loop').checked) {
        clock.seek(0);
        t = 0;
      } else {
        clock.pause();
        clock.seek(state.duration);
        t = state.duration;
        updatePlayButton();
      }
    }
    showTime(t);
  }
  if (controls.update() || dirty) render();
}

// ------------------------------------------------------------------------------------------ test hooks

function screenBox(i) {
  // The CSS-pixel box (page coordinates) of dance i's drawn joints, seen by the camera.
  const figure = state.figures[i];
  const rect = renderer.domElement.getBoundingClientRect();
  const box = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
  for (const mesh of figure.joints) {
    const p = mesh.getWorldPosition(new THREE.Vector3()).project(camera);
    const x = rect.left + ((p.x + 1) / 2) * rect.width;
    const y = rect.top + ((1 - p.y) / 2) * rect.height;
    box.x0 = Math.min(box.x0, x); box.x1 = Math.max(box.x1, x);
    box.y0 = Math.min(box.y0, y); box.y1 = Math.max(box.y1, y);
  }
  return box;
}

window.danceba = {
  ready: false,
  error: null,
  pieces: () => state.catalog.pieces.map((p) => p.name),
  piece: () => state.piece && state.piece.name,
  loadPiece: (name) => loadPiece(name),
  seek: (t) => { seek(t); render(); return state.figures.map((f) => f.frame); },
  time: () => clock.now(),
  duration: () => state.duration,
  play: () => play(),
  pause: () => { pause(); render(); return clock.now(); },
  playing: () => clock.playing,
  tracks: () => state.figures.map((f) => ({ label: f.dance.label, kind: f.dance.kind, track: f.dance.track,
    fps: f.fps, nFrames: f.nFrames, frame: f.frame, floorY: f.floorY })),
  drawnJoints: (i) => state.figures[i].drawnJoints(),
  drawnBones: (i) => state.figures[i].drawnBones(),
  screenBox,
  setFiguresVisible: (visible) => { state.figures.forEach((f) => f.setVisible(visible)); render(); },
  musicBeats: () => state.musicBeats,
  motionBeats: (i) => state.figures[i].motionBeats,
  timelineX: (s) => { const r = $('timeline').getBoundingClientRect(); return r.left + timelineX(s, timelineView(clock.now())); },
  timelineRowY: (row) => $('timeline').getBoundingClientRect().top + (row + 0.5) * ROW,
};

function fail(error) {
  console.error(error);
  setStatus('');
  showMessage(String(error.message || error));
}

async function start() {
  resize();
  tick();
  state.catalog = await fetchJson('/api/catalog');
  fillPieces();
  const asked = decodeURIComponent((location.hash.match(/piece=([^&]+)/) || [])[1] || '');
  const names = state.catalog.pieces.map((p) => p.name);
  await loadPiece(names.includes(asked) ? asked : names[0]);
}

start().catch(fail);
