// view.html's player (datasets/viewer.py writes the page): the people's .glb files, embedded as base64, played
// with three.js on one clock in the video's time (frame f at f / fps seconds), beside the overlay video if any.
// It runs from file:// without a server or network; `view.html#frame=N&paused` opens paused at frame N (1-based).
// For tests it mirrors its state on <body>: data-ready, data-frame (the frame shown, 1-based as the image names),
// data-first-frame (the first one shown), data-ticks (frames drawn) and data-error.
(function () {
  "use strict";
  const DV = window.DV;
  const cfg = JSON.parse(document.getElementById("dv-data").textContent);
  const body = document.body;
  const $ = (id) => document.getElementById(id);
  const canvas = $("view"), timeline = $("timeline"), playButton = $("play"), frameLabel = $("frame");
  const video = $("video");
  const state = { playing: !cfg.paused, frame: cfg.start, last: null, people: [], ticks: 0 };
  const hash = new URLSearchParams(window.location.hash.slice(1));  // view.html#frame=40&paused: open there
  if (hash.has("frame")) state.frame = Math.min(cfg.end, Math.max(cfg.start, Number(hash.get("frame")) - 1 || 0));
  if (hash.has("paused")) state.playing = false;

  function fail(message) {
    body.dataset.error = message;
    $("status").textContent = "Cannot show the animation: " + message;
  }
  window.addEventListener("error", (event) => fail(String(event.message)));

  function bytesOf(base64) {
    const raw = atob(base64);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  const renderer = new DV.WebGLRenderer({ canvas: canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  const scene = new DV.Scene();
  scene.background = new DV.Color(cfg.background);
  scene.add(new DV.HemisphereLight(0xffffff, 0x404040, 2.2));
  const sun = new DV.DirectionalLight(0xffffff, 1.6);
  sun.position.set(0.5, 1.0, 1.0);
  scene.add(sun);
  const camera = new DV.PerspectiveCamera(cfg.yfov_deg, 4 / 3, 0.01, 1000);
  const controls = new DV.OrbitControls(camera, canvas);

  function resetView() {  // the video's camera: at the origin, looking down -z at the first person's depth
    camera.position.set(0, 0, 0);
    controls.target.set(0, 0, -cfg.depth);
    controls.update();
  }

  function resize() {
    const width = canvas.clientWidth, height = canvas.clientHeight;
    renderer.setSize(width, height, false);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
    const rect = canvas.getBoundingClientRect();
    canvas.dataset.rect = [rect.left, rect.top, rect.width, rect.height].map(Math.round).join(",");
  }

  function addPerson(person, gltf) {
    gltf.scene.traverse((node) => { if (node.isMesh) node.frustumCulled = false; });  // the skin moves it
    const mixer = new DV.AnimationMixer(gltf.scene);
    const clip = gltf.animations[0];
    mixer.clipAction(clip).play();
    scene.add(gltf.scene);
    state.people.push({ info: person, root: gltf.scene, mixer: mixer, action: mixer.existingAction(clip),
                        duration: clip.duration, held: new Set(person.held) });
  }

  function showFrame(frame) {  // pose every person at a video frame (0-based id)
    const time = frame / cfg.fps;
    let held = false;
    for (const p of state.people) {
      const inside = frame >= p.info.first && frame <= p.info.last;
      p.root.visible = inside;
      if (!inside) continue;
      p.action.time = Math.min(time, p.duration - 1e-6);
      p.mixer.update(0);
      held = held || p.held.has(frame);
    }
    timeline.value = String(frame);
    frameLabel.textContent = String(frame + 1);
    $("held").hidden = !held;
    body.dataset.frame = String(frame + 1);
    if (!body.dataset.firstFrame) body.dataset.firstFrame = String(frame + 1);
    // the video follows the clock: exactly when paused, within a quarter second while both play
    const slack = state.playing ? Math.max(0.25, 2 / cfg.fps) : 0.4 / cfg.fps;
    if (video && video.readyState > 0 && Math.abs(video.currentTime - time) > slack) video.currentTime = time;
  }

  function setPlaying(playing) {
    state.playing = playing;
    playButton.textContent = playing ? "Pause" : "Play";
    state.last = null;
    if (video) { if (playing) video.play().catch(() => {}); else video.pause(); }
  }

  function tick(now) {
    if (state.playing && state.last !== null) {
      let next = state.frame + ((now - state.last) / 1000) * cfg.fps;
      if (next > cfg.end) next = cfg.start;
      state.frame = next;
    }
    state.last = now;
    const frame = cfg.start + Math.floor((state.frame - cfg.start) / cfg.step) * cfg.step;
    showFrame(frame);
    renderer.render(scene, camera);
    state.ticks += 1;
    body.dataset.ticks = String(state.ticks);
    requestAnimationFrame(tick);
  }

  function start() {
    timeline.min = String(cfg.start);
    timeline.max = String(cfg.end);
    timeline.step = String(cfg.step);
    $("total").textContent = String(cfg.end + 1);
    timeline.addEventListener("input", () => { state.frame = Number(timeline.value); setPlaying(false); });
    playButton.addEventListener("click", () => setPlaying(!state.playing));
    $("reset").addEventListener("click", resetView);
    window.addEventListener("resize", resize);
    resize();
    resetView();
    setPlaying(state.playing);
    body.dataset.ready = "1";
    $("status").textContent = "";
    requestAnimationFrame(tick);
  }

  const loader = new DV.GLTFLoader();
  const loads = cfg.people.map((person) => new Promise((resolve, reject) => {
    loader.parse(bytesOf(person.glb), "", (gltf) => resolve([person, gltf]),
                 (err) => reject(new Error(person.name + ": " + (err && err.message ? err.message : err))));
  }));
  Promise.all(loads).then((loaded) => {
    loaded.forEach(([person, gltf]) => addPerson(person, gltf));
    start();
  }).catch((err) => fail(err.message || String(err)));
})();
