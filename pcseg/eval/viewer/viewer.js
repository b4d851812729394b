// pcseg scene viewer: one self-contained page, plain WebGL 1, no network.
// The page embeds META (JSON) and the points (base64 of a zlib stream):
//   uint16 x,y,z per point (quantised over META.bbox), then uint8 ground truth per point,
//   then uint8 prediction per point when META.has_pred; label 255 = none.
"use strict";
(function () {
  const META = JSON.parse(document.getElementById("meta").textContent);
  const N = META.num_points;
  const NONE = 255;
  const canvas = document.getElementById("view");
  const statusEl = document.getElementById("status");
  const pickEl = document.getElementById("pick");
  const legendEl = document.getElementById("legend");
  const sizeEl = document.getElementById("size");
  const modeButtons = Array.from(document.querySelectorAll("#modes button"));
  const t0 = performance.now();

  const AVAILABLE = { pred: META.has_pred, gt: META.has_gt || !META.has_pred, error: META.has_pred && META.has_gt };
  const state = { mode: META.has_pred ? "pred" : "gt", hidden: new Set(), size: 2 };
  const view = { yaw: -2.2, pitch: 1.0, dist: 1, target: [0, 0, 0], fov: 0.8 };
  let gl = null, prog = null, buf = {}, pos = null, gt = null, pred = null, col = null, vis = null;
  let mvp = new Float32Array(16), dirty = true, pickTarget = null;

  function fail(msg) { statusEl.textContent = msg; statusEl.style.color = "#f88"; }

  async function decode() {
    const text = document.getElementById("points").textContent.trim();
    const bin = atob(text);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    if (typeof DecompressionStream === "undefined") throw new Error("this browser lacks DecompressionStream");
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function unpack(raw) {
    const want = N * 6 + N + (META.has_pred ? N : 0);
    if (raw.byteLength !== want) throw new Error(`point data has ${raw.byteLength} bytes, expected ${want}`);
    const q = new Uint16Array(raw.buffer, raw.byteOffset, N * 3);
    const lo = META.bbox[0], hi = META.bbox[1];
    const c = [0, 1, 2].map((k) => (lo[k] + hi[k]) / 2);
    pos = new Float32Array(N * 3);
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < 3; k++) pos[3 * i + k] = lo[k] + (q[3 * i + k] / 65535) * (hi[k] - lo[k]) - c[k];
    }
    gt = raw.subarray(N * 6, N * 7);
    pred = META.has_pred ? raw.subarray(N * 7, N * 8) : null;
    col = new Uint8Array(N * 3);
    vis = new Uint8Array(N);
    const ext = [0, 1, 2].map((k) => hi[k] - lo[k]);
    view.radius = Math.max(0.5 * Math.hypot(ext[0], ext[1], ext[2]), 1e-3);
    resetView();
  }

  function resetView() {
    view.yaw = -2.2; view.pitch = 1.0; view.target = [0, 0, 0];
    view.dist = view.radius / Math.tan(view.fov / 2) * 1.05;
    dirty = true;
  }

  const PALETTE = META.classes.reduce((m, c) => { m[c.index] = c.color; return m; }, {});
  const COLORS = META.colors;  // error mode: correct / wrong / unlabelled

  function labelFor(i) { return state.mode === "pred" ? pred[i] : gt[i]; }

  function recolor() {
    for (let i = 0; i < N; i++) {
      let rgb;
      if (state.mode === "error") {
        rgb = gt[i] === NONE ? COLORS.unlabelled : (pred[i] === gt[i] ? COLORS.correct : COLORS.wrong);
      } else {
        const l = state.mode === "pred" ? pred[i] : gt[i];
        rgb = l === NONE ? COLORS.unlabelled : (PALETTE[l] || COLORS.unlabelled);
      }
      col[3 * i] = rgb[0]; col[3 * i + 1] = rgb[1]; col[3 * i + 2] = rgb[2];
      vis[i] = state.hidden.has(labelFor(i)) ? 0 : 1;
    }
    if (gl) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buf.col); gl.bufferData(gl.ARRAY_BUFFER, col, gl.DYNAMIC_DRAW);
      gl.bindBuffer(gl.ARRAY_BUFFER, buf.vis); gl.bufferData(gl.ARRAY_BUFFER, vis, gl.DYNAMIC_DRAW);
    }
    dirty = true;
  }

  // u_pick = 1 draws each point's index + 1 as its colour (24 bits), for picking what is on screen.
  const VS = `attribute vec3 a_pos; attribute vec3 a_col; attribute float a_vis; attribute float a_id;
    uniform mat4 u_mvp; uniform float u_size; uniform float u_pick; varying vec3 v_col;
    void main() {
      float id = a_id + 1.0;
      v_col = u_pick > 0.5 ? vec3(mod(id, 256.0), mod(floor(id / 256.0), 256.0), floor(id / 65536.0)) / 255.0 : a_col;
      if (a_vis < 0.5) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); gl_PointSize = 0.0; return; }
      gl_Position = u_mvp * vec4(a_pos, 1.0); gl_PointSize = u_size;
    }`;
  const FS = `precision highp float; varying vec3 v_col;
    void main() { vec2 d = gl_PointCoord - 0.5; if (dot(d, d) > 0.25) discard; gl_FragColor = vec4(v_col, 1.0); }`;

  function shader(type, src) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src); gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }

  function initGL() {
    gl = canvas.getContext("webgl", { antialias: true, preserveDrawingBuffer: true });
    if (!gl) throw new Error("WebGL is not available in this browser");
    prog = gl.createProgram();
    gl.attachShader(prog, shader(gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    gl.useProgram(prog);
    const ids = new Float32Array(N);
    for (let i = 0; i < N; i++) ids[i] = i;
    for (const [name, data, size, type, norm] of [["pos", pos, 3, gl.FLOAT, false],
      ["col", col, 3, gl.UNSIGNED_BYTE, true], ["vis", vis, 1, gl.UNSIGNED_BYTE, false], ["id", ids, 1, gl.FLOAT, false]]) {
      buf[name] = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, buf[name]);
      gl.bufferData(gl.ARRAY_BUFFER, data, name === "pos" || name === "id" ? gl.STATIC_DRAW : gl.DYNAMIC_DRAW);
      const loc = gl.getAttribLocation(prog, "a_" + name);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, size, type, norm, 0, 0);
    }
    gl.enable(gl.DEPTH_TEST);
    gl.clearColor(0.114, 0.125, 0.149, 1);
  }

  // Column-major 4x4 matrices.
  function perspective(fov, aspect, near, far) {
    const f = 1 / Math.tan(fov / 2), nf = 1 / (near - far);
    return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0];
  }
  function sub(a, b) { return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]; }
  function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
  function norm(a) { const l = Math.hypot(a[0], a[1], a[2]) || 1; return [a[0] / l, a[1] / l, a[2] / l]; }
  function dot(a, b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
  function eye() {
    const cp = Math.cos(view.pitch), t = view.target;
    return [t[0] + view.dist * cp * Math.cos(view.yaw), t[1] + view.dist * cp * Math.sin(view.yaw),
            t[2] + view.dist * Math.sin(view.pitch)];
  }
  function basis() {
    const e = eye(), f = norm(sub(view.target, e)), r = norm(cross(f, [0, 0, 1])), u = cross(r, f);
    return { e, f, r, u };
  }
  function lookAt() {
    const { e, f, r, u } = basis();
    return [r[0], u[0], -f[0], 0, r[1], u[1], -f[1], 0, r[2], u[2], -f[2], 0,
            -dot(r, e), -dot(u, e), dot(f, e), 1];
  }
  function mul(a, b) {
    const o = new Float32Array(16);
    for (let c = 0; c < 4; c++) for (let r = 0; r < 4; r++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
      o[c * 4 + r] = s;
    }
    return o;
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    gl.viewport(0, 0, w, h);
    const near = Math.max(view.dist - 3 * view.radius, view.dist * 1e-3), far = view.dist + 3 * view.radius;
    mvp = mul(perspective(view.fov, w / h, near, far), lookAt());
    drawPoints(false);
    dirty = false;
  }

  function drawPoints(picking) {
    const dpr = window.devicePixelRatio || 1;
    if (picking) gl.clearColor(0, 0, 0, 1); else gl.clearColor(0.114, 0.125, 0.149, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.uniformMatrix4fv(gl.getUniformLocation(prog, "u_mvp"), false, mvp);
    gl.uniform1f(gl.getUniformLocation(prog, "u_size"), state.size * dpr);
    gl.uniform1f(gl.getUniformLocation(prog, "u_pick"), picking ? 1 : 0);
    gl.drawArrays(gl.POINTS, 0, N);
  }

  // The point drawn under (x, y) CSS pixels, or the nearest one drawn within a few pixels: the scene
  // is drawn again off screen with index colours, so occlusion and point size are what the eye sees.
  function pointAt(x, y) {
    const dpr = window.devicePixelRatio || 1, w = canvas.width, h = canvas.height;
    if (!pickTarget || pickTarget.w !== w || pickTarget.h !== h) {
      if (pickTarget) { gl.deleteFramebuffer(pickTarget.fb); gl.deleteTexture(pickTarget.tex); gl.deleteRenderbuffer(pickTarget.depth); }
      const tex = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, w, h, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      const depth = gl.createRenderbuffer();
      gl.bindRenderbuffer(gl.RENDERBUFFER, depth);
      gl.renderbufferStorage(gl.RENDERBUFFER, gl.DEPTH_COMPONENT16, w, h);
      const fb = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
      gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.DEPTH_ATTACHMENT, gl.RENDERBUFFER, depth);
      pickTarget = { fb, tex, depth, w, h };
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, pickTarget.fb);
    gl.disable(gl.BLEND);
    drawPoints(true);
    const r = Math.ceil(4 * dpr), px = Math.round(x * dpr), py = Math.round(h - y * dpr);
    const x0 = Math.max(0, px - r), y0 = Math.max(0, py - r);
    const bw = Math.min(w, px + r + 1) - x0, bh = Math.min(h, py + r + 1) - y0;
    const block = new Uint8Array(Math.max(bw, 0) * Math.max(bh, 0) * 4);
    if (bw > 0 && bh > 0) gl.readPixels(x0, y0, bw, bh, gl.RGBA, gl.UNSIGNED_BYTE, block);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    let best = -1, bestD = Infinity;
    for (let j = 0; j < bh; j++) for (let i = 0; i < bw; i++) {
      const k = 4 * (j * bw + i), id = block[k] + 256 * block[k + 1] + 65536 * block[k + 2];
      const d = (x0 + i - px) ** 2 + (y0 + j - py) ** 2;
      if (id > 0 && id <= N && d < bestD) { best = id - 1; bestD = d; }
    }
    dirty = true;  // the visible frame is redrawn from scratch next
    return best;
  }

  function loop() {
    if (dirty && gl) draw();
    requestAnimationFrame(loop);
  }

  function className(l) {
    if (l === NONE) return "unlabelled";
    const c = META.classes.find((x) => x.index === l);
    return c ? c.name : `class ${l}`;
  }

  function setMode(mode, fromHash) {
    if (!AVAILABLE[mode]) mode = AVAILABLE[state.mode] ? state.mode : (META.has_pred ? "pred" : "gt");
    state.mode = mode;
    modeButtons.forEach((b) => b.classList.toggle("on", b.dataset.mode === mode));
    if (!fromHash) { try { history.replaceState(null, "", "#mode=" + mode); } catch (e) { /* file:// quirks */ } }
    document.title = `${META.scene} · ${mode}`;
    if (pos) { recolor(); updateSummary(); }
  }

  function hashMode() {
    const m = /(?:^|[#&])mode=(pred|gt|error)/.exec(location.hash);
    return m ? m[1] : null;
  }

  function buildLegend() {
    legendEl.textContent = "";
    for (const c of META.classes) {
      const row = document.createElement("div");
      row.className = "cls";
      row.dataset.index = c.index;
      const sw = document.createElement("span");
      sw.className = "sw";
      sw.style.background = `rgb(${c.color.join(",")})`;
      const nm = document.createElement("span");
      nm.className = "nm";
      nm.textContent = c.name;
      nm.title = `${c.name}: ${c.gt_points} labelled points, ${c.pred_points} predicted`;
      const iou = document.createElement("span");
      iou.className = "iou";
      iou.textContent = c.iou === null ? "–" : (100 * c.iou).toFixed(1);
      iou.title = "this scene's IoU (%)";
      row.append(sw, nm, iou);
      let timer = null;
      row.addEventListener("click", () => {  // single click toggles; a double click isolates
        clearTimeout(timer);
        timer = setTimeout(() => { toggle(c.index); }, 220);
      });
      row.addEventListener("dblclick", () => { clearTimeout(timer); isolate(c.index); });
      legendEl.append(row);
    }
  }

  function refreshLegendRows() {
    for (const row of legendEl.children) row.classList.toggle("off", state.hidden.has(Number(row.dataset.index)));
  }
  function refreshLegend() { refreshLegendRows(); recolor(); updateSummary(); }
  function toggle(i) { state.hidden.has(i) ? state.hidden.delete(i) : state.hidden.add(i); refreshLegend(); }
  function isolate(i) {
    state.hidden = new Set(META.classes.map((c) => c.index).filter((j) => j !== i));
    refreshLegend();
  }
  function showAll() { state.hidden.clear(); refreshLegend(); }

  function updateSummary() {
    const parts = [`${N.toLocaleString()} points`];
    if (META.miou !== null) parts.push(`scene mIoU ${(100 * META.miou).toFixed(1)}`);
    if (state.hidden.size) parts.push(`${state.hidden.size} hidden (by ${state.mode === "pred" ? "predicted" : "true"} class)`);
    document.getElementById("summary").textContent = parts.join(" · ");
  }

  function pick(x, y) {
    const best = pointAt(x, y);
    if (best < 0) { pickEl.style.display = "none"; return; }
    const lines = [];
    if (META.has_pred) lines.push(`predicted: ${className(pred[best])}`);
    if (META.has_gt) lines.push(`true: ${className(gt[best])}`);
    pickEl.textContent = lines.join(" · ");
    pickEl.style.left = `${x + 12}px`;
    pickEl.style.top = `${y + 12}px`;
    pickEl.style.display = "block";
  }

  function bindInput() {
    let drag = null;
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    canvas.addEventListener("mousedown", (e) => {
      drag = { x: e.clientX, y: e.clientY, x0: e.clientX, y0: e.clientY, pan: e.button === 2 || e.shiftKey };
    });
    window.addEventListener("mousemove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      drag.x = e.clientX; drag.y = e.clientY;
      if (drag.pan) {
        const { r, u } = basis();
        const s = (2 * view.dist * Math.tan(view.fov / 2)) / canvas.clientHeight;
        for (let k = 0; k < 3; k++) view.target[k] += (-dx * r[k] + dy * u[k]) * s;
      } else {
        view.yaw -= dx * 0.008;
        view.pitch = Math.max(-1.55, Math.min(1.55, view.pitch + dy * 0.008));
      }
      dirty = true;
    });
    window.addEventListener("mouseup", (e) => {
      if (drag && Math.hypot(e.clientX - drag.x0, e.clientY - drag.y0) < 4 && e.target === canvas) {
        const rect = canvas.getBoundingClientRect();
        pick(e.clientX - rect.left, e.clientY - rect.top);
      }
      drag = null;
    });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      view.dist = Math.max(view.radius * 0.02, Math.min(view.radius * 50, view.dist * Math.exp(e.deltaY * 0.0012)));
      dirty = true;
    }, { passive: false });
    sizeEl.addEventListener("input", () => { state.size = Number(sizeEl.value); dirty = true; });
    modeButtons.forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
    document.getElementById("show-all").addEventListener("click", showAll);
    window.addEventListener("hashchange", () => { const m = hashMode(); if (m) setMode(m, true); });
    window.addEventListener("resize", () => { dirty = true; });
    window.addEventListener("keydown", (e) => {
      if (e.target instanceof HTMLInputElement) return;
      const modes = { 1: "pred", 2: "gt", 3: "error", p: "pred", g: "gt", e: "error" };
      if (modes[e.key]) setMode(modes[e.key]);
      else if (e.key === "+" || e.key === "=") { state.size = Math.min(12, state.size + 0.5); sizeEl.value = state.size; dirty = true; }
      else if (e.key === "-") { state.size = Math.max(1, state.size - 0.5); sizeEl.value = state.size; dirty = true; }
      else if (e.key === "r") resetView();
      else if (e.key === "a") showAll();
    });
  }

  async function main() {
    document.getElementById("title").textContent = META.title;
    modeButtons.forEach((b) => { b.disabled = !AVAILABLE[b.dataset.mode]; });
    const m = /(?:^|[#&])size=([0-9.]+)/.exec(location.hash);
    if (m) { state.size = Math.max(1, Math.min(12, Number(m[1]))); sizeEl.value = state.size; }
    // #hide=ceiling,wall hides classes by name (or index), e.g. to look into a room in a link
    const h = /(?:^|[#&])hide=([^&]*)/.exec(location.hash);
    if (h) {
      for (const name of decodeURIComponent(h[1]).split(",")) {
        const c = META.classes.find((x) => x.name === name.trim() || String(x.index) === name.trim());
        if (c) state.hidden.add(c.index);
      }
    }
    buildLegend();
    refreshLegendRows();
    setMode(hashMode() || state.mode, true);
    try {
      unpack(await decode());
      initGL();
    } catch (err) {
      fail(`cannot show the scene: ${err.message}`);
      return;
    }
    recolor();
    updateSummary();
    bindInput();
    draw();
    const ms = Math.round(performance.now() - t0);
    statusEl.textContent = `${META.scene} · drawn in ${ms} ms`;
    document.body.dataset.ready = "1";
    requestAnimationFrame(loop);
  }

  main();
})();
