"""The latent explorer: drag a marker over a latent plane and see every modality decoded live.

Drawing only. The decodings come precomputed on a grid
(:func:`mmvae.diagnostics.latent_grid.latent_grid`); this module packs them (float32, base64) with
the embedded points into one self-contained HTML page (inline JavaScript and SVG / canvas, nothing
fetched) that ``st.iframe`` shows. While the marker is dragged (mouse,
touch, or the arrow keys after a click), the page shows the decoding at the grid point nearest to
the marker, and says which grid point that is. Nothing goes back to the server: no rerun per move.

Sizes are bounded: the grid holds at most ``max_bytes`` of float32 decodings (2 MB by default,
about 2.7 MB as base64) and at most ``MAX_POINTS`` embedded points are drawn.
"""
from __future__ import annotations

import base64
import html
import json

import numpy as np

from app.figures import PALETTE  # the classes' colours, as on every other chart

MAX_POINTS = 1000


def payload(grid: dict, specs: dict, points=None, labels=None, label_names=None, axis_names=("z1", "z2"),
            note: str = "") -> dict:
    """The JSON-able data the page draws. ``grid``: :func:`latent_grid`'s result; ``specs``: the
    data's ModalitySpecs (Gaussian modalities are shown in physical units, x * scale + shift);
    ``points`` (N, 2) coordinates in the plane with integer ``labels`` (N,) or None."""
    mods = []
    for name, arr in grid["decoded"].items():
        spec = specs.get(name)
        values = np.asarray(arr, dtype=np.float64)
        if spec is not None and spec.likelihood in ("gaussian", "laplace", "studentt"):
            values = np.asarray(spec.to_physical(values))
        kind = spec.kind if spec is not None else "vector"
        shape = list(values.shape[2:])
        if kind == "image" and len(shape) == 2:
            shape = [1] + shape
        if kind == "image" and (len(shape) != 3 or shape[0] not in (1, 3)):
            kind = "vector"
        values = values.astype(np.float32)
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        if spec is not None and spec.likelihood in ("bernoulli", "categorical"):
            lo, hi = 0.0, 1.0  # probabilities: black = 0, white = 1 on every image
        mods.append({"name": str(name), "kind": kind, "shape": shape, "dim": int(np.prod(shape)),
                     "lo": lo, "hi": hi if hi > lo else lo + 1.0, "unit": str(getattr(spec, "unit", "") or ""),
                     "data": base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")})
    pts = {"x": [], "y": [], "c": []}
    if points is not None and len(points):
        p = np.asarray(points, dtype=float)[:MAX_POINTS]
        lab = np.zeros(len(p), dtype=int) if labels is None else np.asarray(labels)[: len(p)].astype(int)
        ok = np.isfinite(p).all(axis=1)
        pts = {"x": np.round(p[ok, 0], 4).tolist(), "y": np.round(p[ok, 1], 4).tolist(), "c": lab[ok].tolist()}
    names = [str(n) for n in (label_names or [])]
    return {"grid": [float(g) for g in grid["grid"]], "axes": [str(a) for a in axis_names], "note": str(note),
            "points": pts, "labels": names, "colors": PALETTE, "mods": mods}


def page_html(data: dict, height: int = 430) -> str:
    """A self-contained HTML document drawing ``data`` (:func:`payload`). The JSON sits in a
    ``<script type="application/json">`` block with ``<`` escaped, so no text in it (modality or
    label names from a user's file) can close the block or become markup; the script writes all
    text with ``textContent``."""
    blob = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")
    return _TEMPLATE.replace("__DATA__", blob).replace("__HEIGHT__", str(int(height) - 10)).replace(
        "__TITLE__", html.escape("Latent explorer"))


_TEMPLATE = r"""<!doctype html><html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
 body{font-family:"Source Sans Pro",sans-serif;margin:0;color:#262730;font-size:13px}
 #wrap{display:flex;gap:16px;align-items:flex-start;height:__HEIGHT__px}
 #plane{touch-action:none;cursor:crosshair;border:1px solid #ddd;border-radius:4px;outline:none}
 #plane:focus{border-color:#ff4b4b}
 #panels{display:flex;flex-wrap:wrap;gap:12px;align-content:flex-start;max-height:__HEIGHT__px;overflow:auto}
 .panel{display:flex;flex-direction:column;align-items:center}
 .panel b{margin-bottom:4px}
 #readout{margin:4px 0 6px 0;font-variant-numeric:tabular-nums}
 .note{color:#666}
</style></head><body>
<script id="data" type="application/json">__DATA__</script>
<div id="readout"></div>
<div id="wrap"><div><canvas id="plane" width="360" height="360" tabindex="0"
  aria-label="latent plane: drag the marker, or click and use the arrow keys"></canvas>
  <div id="legend" class="note" style="max-width:360px"></div></div><div id="panels"></div></div>
<script>
(function(){
const D = JSON.parse(document.getElementById('data').textContent);
const g = D.grid, n = g.length, lo = g[0], hi = g[n-1], step = (hi-lo)/(n-1);
const cv = document.getElementById('plane'), ctx = cv.getContext('2d');
const W = cv.width, M = 34, S = W - 2*M;
const px = v => M + (v-lo)/(hi-lo)*S, py = v => M + S - (v-lo)/(hi-lo)*S;
const zx = p => lo + (p-M)/S*(hi-lo), zy = p => lo + (M+S-p)/S*(hi-lo);
function floats(b64){const s=atob(b64), u=new Uint8Array(s.length); for(let i=0;i<s.length;i++) u[i]=s.charCodeAt(i);
  return new Float32Array(u.buffer);}
const mods = D.mods.map(m => Object.assign({}, m, {v: floats(m.data)}));
const clampi = i => Math.max(0, Math.min(n-1, i));
let z = [0, 0], cell = [-1, -1];
// ---------------------------------------------------------------- the plane
function drawPlane(){
  ctx.clearRect(0,0,W,W); ctx.strokeStyle='#eee'; ctx.fillStyle='#666'; ctx.font='11px sans-serif';
  ctx.textAlign='center';
  for(let t=Math.ceil(lo); t<=Math.floor(hi); t++){
    ctx.beginPath(); ctx.moveTo(px(t),M); ctx.lineTo(px(t),M+S); ctx.moveTo(M,py(t)); ctx.lineTo(M+S,py(t)); ctx.stroke();
    ctx.fillText(String(t), px(t), M+S+13); ctx.textAlign='right'; ctx.fillText(String(t), M-4, py(t)+4); ctx.textAlign='center';}
  ctx.fillStyle='#262730'; ctx.fillText(D.axes[0], M+S/2, W-4);
  ctx.save(); ctx.translate(11, M+S/2); ctx.rotate(-Math.PI/2); ctx.fillText(D.axes[1], 0, 0); ctx.restore();
  const P = D.points;
  for(let i=0;i<P.x.length;i++){ctx.fillStyle=D.colors[((P.c[i]%D.colors.length)+D.colors.length)%D.colors.length];
    ctx.globalAlpha=0.55; ctx.beginPath(); ctx.arc(px(P.x[i]), py(P.y[i]), 2.5, 0, 2*Math.PI); ctx.fill();}
  ctx.globalAlpha=1;
  const gx = lo + cell[0]*step, gy = lo + cell[1]*step;
  ctx.strokeStyle='#aaa'; ctx.setLineDash([3,3]); ctx.strokeRect(px(gx)-S/(2*(n-1)), py(gy)-S/(2*(n-1)), S/(n-1), S/(n-1));
  ctx.setLineDash([]); ctx.lineWidth=2.5; ctx.strokeStyle='#000'; ctx.fillStyle='#fff';
  ctx.beginPath(); ctx.arc(px(z[0]), py(z[1]), 7, 0, 2*Math.PI); ctx.fill(); ctx.stroke(); ctx.lineWidth=1;
}
// ---------------------------------------------------------------- the decodings
const panels = document.getElementById('panels');
const views = mods.map(m => {
  const box = document.createElement('div'); box.className='panel'; box.dataset.modality = m.name;
  const t = document.createElement('b'); t.textContent = m.name + (m.unit ? ' (' + m.unit + ')' : ''); box.appendChild(t);
  let el;
  if(m.kind === 'image'){
    const [C,H,Wd] = m.shape, k = Math.max(2, Math.floor(150/Math.max(H,Wd)));
    el = document.createElement('canvas'); el.width = Wd; el.height = H;
    el.style.width = (Wd*k)+'px'; el.style.height = (H*k)+'px'; el.style.imageRendering='pixelated';
    el.style.border='1px solid #ddd';
  } else {
    el = document.createElementNS('http://www.w3.org/2000/svg','svg');
    el.setAttribute('width', m.kind==='sequence' ? 150 : 190); el.setAttribute('height', m.kind==='sequence' ? 260 : 160);
  }
  box.appendChild(el); const cap = document.createElement('span'); cap.className='note'; box.appendChild(cap);
  panels.appendChild(box); return {m, el, cap};
});
function values(m, i, j){const o = (i*n + j)*m.dim; return m.v.subarray(o, o + m.dim);}
function svg(tag, attrs, parent){const e=document.createElementNS('http://www.w3.org/2000/svg',tag);
  for(const k in attrs) e.setAttribute(k, attrs[k]); parent.appendChild(e); return e;}
function fmt(x){return Math.abs(x) >= 100 || (Math.abs(x) < 0.01 && x !== 0) ? x.toExponential(1) : x.toFixed(2);}
function drawPanel(view, vals){
  const {m, el, cap} = view, r = m.hi - m.lo;
  if(m.kind === 'image'){
    const [C,H,Wd] = m.shape, c2 = el.getContext('2d'), img = c2.createImageData(Wd, H);
    for(let y=0;y<H;y++) for(let x=0;x<Wd;x++){const q=(y*Wd+x)*4;
      for(let ch=0;ch<3;ch++){const v = vals[(C===3?ch:0)*H*Wd + y*Wd + x];
        img.data[q+ch] = Math.round(255*Math.max(0, Math.min(1, (v-m.lo)/r)));}
      img.data[q+3]=255;}
    c2.putImageData(img, 0, 0); cap.textContent = 'black ' + fmt(m.lo) + ', white ' + fmt(m.hi);
    return;
  }
  while(el.firstChild) el.removeChild(el.firstChild);
  const w = +el.getAttribute('width'), h = +el.getAttribute('height'), L = 34, B = 18;
  svg('rect', {x:L, y:4, width:w-L-4, height:h-B-8, fill:'none', stroke:'#ddd'}, el);
  if(m.kind === 'sequence'){  // a log: samples down the window, values across
    const X = v => L + (v-m.lo)/r*(w-L-8), Y = k => 6 + k/(vals.length-1)*(h-B-12);
    svg('polyline', {points: Array.from(vals, (v,k) => X(v).toFixed(1)+','+Y(k).toFixed(1)).join(' '),
                     fill:'none', stroke:'#1f77b4', 'stroke-width':1.5}, el);
    svg('text', {x:L, y:h-4, 'font-size':10, fill:'#666'}, el).textContent = fmt(m.lo);
    svg('text', {x:w-4, y:h-4, 'font-size':10, fill:'#666', 'text-anchor':'end'}, el).textContent = fmt(m.hi);
    svg('text', {x:L-3, y:12, 'font-size':10, fill:'#666', 'text-anchor':'end'}, el).textContent = 'top';
    cap.textContent = 'samples down the window';
  } else {  // a vector: one bar per entry
    const nb = vals.length, bw = (w-L-8)/nb, Y = v => 6 + (m.hi-v)/r*(h-B-12), y0 = Y(Math.max(m.lo, Math.min(m.hi, 0)));
    for(let k=0;k<nb;k++){const y = Y(vals[k]);
      svg('rect', {x:L+2+k*bw, y:Math.min(y,y0), width:Math.max(1,bw-2), height:Math.abs(y0-y)+0.5, fill:'#0072B2'}, el);}
    svg('text', {x:L-3, y:12, 'font-size':10, fill:'#666', 'text-anchor':'end'}, el).textContent = fmt(m.hi);
    svg('text', {x:L-3, y:h-B, 'font-size':10, fill:'#666', 'text-anchor':'end'}, el).textContent = fmt(m.lo);
    cap.textContent = nb + ' entries';
  }
}
const legend = document.getElementById('legend'), used = [...new Set(D.points.c)].sort((a, b) => a - b);
used.forEach(c => {const sw = document.createElement('span'); sw.textContent = '\u25CF ';
  sw.style.color = D.colors[((c % D.colors.length) + D.colors.length) % D.colors.length];
  const t = document.createElement('span'); t.textContent = (D.labels[c] !== undefined ? D.labels[c] : String(c)) + '  ';
  legend.appendChild(sw); legend.appendChild(t);});
const readout = document.getElementById('readout');
function update(nz){
  z = [Math.max(lo, Math.min(hi, nz[0])), Math.max(lo, Math.min(hi, nz[1]))];
  const c = [clampi(Math.round((z[0]-lo)/step)), clampi(Math.round((z[1]-lo)/step))];
  const changed = c[0] !== cell[0] || c[1] !== cell[1];
  cell = c; drawPlane();
  if(changed){
    const shown = {};
    views.forEach(view => {const v = values(view.m, c[0], c[1]); drawPanel(view, v); shown[view.m.name] = Array.from(v.slice(0, 8));});
    window.explorerShown = {cell: c.slice(), z: [lo + c[0]*step, lo + c[1]*step], values: shown};
    document.body.dataset.cell = c.join(',');
  }
  readout.textContent = 'Decoded at ' + D.axes[0] + ' = ' + (lo + c[0]*step).toFixed(2) + ', ' + D.axes[1] + ' = '
    + (lo + c[1]*step).toFixed(2) + ' (the grid point nearest to the marker; grid ' + n + ' x ' + n + ', step '
    + step.toFixed(2) + ')' + (D.note ? '. ' + D.note : '');
}
function at(ev){const b = cv.getBoundingClientRect(); return [zx((ev.clientX-b.left)*W/b.width), zy((ev.clientY-b.top)*W/b.height)];}
let drag = false;
cv.addEventListener('pointerdown', ev => {drag = true; cv.setPointerCapture(ev.pointerId); cv.focus(); update(at(ev)); ev.preventDefault();});
cv.addEventListener('pointermove', ev => {if(drag) update(at(ev));});
cv.addEventListener('pointerup', ev => {drag = false;});
cv.addEventListener('pointercancel', ev => {drag = false;});
cv.addEventListener('keydown', ev => {
  const d = {ArrowLeft:[-1,0], ArrowRight:[1,0], ArrowUp:[0,1], ArrowDown:[0,-1]}[ev.key];
  if(d){update([lo + (cell[0]+d[0])*step, lo + (cell[1]+d[1])*step]); ev.preventDefault();}
});
update([0, 0]);
})();
</script></body></html>"""


def build(model, means: dict | None, bundle, axes: tuple[int, int] = (0, 1), at: str = "prior",
          max_bytes: int = 2_000_000) -> tuple[str, str]:
    """(the explorer's HTML, a sentence saying what the plane is) for ``model``: the decodings on
    a grid (:func:`mmvae.diagnostics.latent_grid.latent_grid`) over a range covering the test
    points' joint codes ``means`` (:func:`app.backend.latent_means`, or None), drawn with them."""
    from app import state
    from mmvae.diagnostics.latent_grid import latent_grid, plane_limits, slice_point

    a, b = axes
    D = model.latent_dim
    codes = None if means is None else np.asarray(means["means"]["joint"], dtype=float)  # (N, D)
    points = None if codes is None else codes[:, [a, b]]
    fixed = slice_point(D, codes, at) if at == "prior" or codes is not None else slice_point(D)
    limits = plane_limits(points)
    grid = latent_grid(model, (a, b), limits=limits, fixed=fixed, max_bytes=max_bytes)
    names = [f"z{i + 1}" for i in range(D)]
    others = [i for i in range(D) if i not in (a, b)]
    note = ""
    if others:
        where = "0, the prior's mean" if at == "prior" or codes is None else "the mean of the test points' codes"
        note = ("The other coordinates are fixed at " + where + ": "
                + ", ".join(f"{names[i]} = {fixed[i]:.2f}" for i in others))
    labels = None if means is None else means.get("labels")
    data = payload(grid, bundle.specs, points, labels, state.display_label_names(bundle), (names[a], names[b]), note)
    n = len(grid["grid"])
    size = sum(len(m["data"]) for m in data["mods"])
    info = (f"The plane of {names[a]} and {names[b]} over [{limits[0]:.1f}, {limits[1]:.1f}]"
            + (f"; {note[0].lower() + note[1:]}" if note else "") + f". Dots: the joint posterior means of "
            f"{len(data['points']['x'])} test points. Decodings precomputed on a {n} x {n} grid "
            f"({size / 1e6:.2f} MB sent to the browser).")
    return page_html(data, height=440), info
