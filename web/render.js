// Drawing arrays as images, probability bars and timing tables.

/** Draws `values` (row-major, `h*w`) as grayscale, mapping [lo, hi] to [0, 255]. */
export function drawGray(canvas, values, w, h, lo = 0, hi = 255) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  const span = hi - lo || 1;
  for (let i = 0; i < w * h; i++) {
    const v = Math.max(0, Math.min(255, Math.round(((values[i] - lo) / span) * 255)));
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

/**
 * A plane as a false-colour image: its own minimum blue, middle white, maximum red (so structure shows
 * whatever the plane's offset; a constant plane is white).
 */
export function drawDiverging(canvas, values, offset, w, h) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < w * h; i++) {
    lo = Math.min(lo, values[offset + i]);
    hi = Math.max(hi, values[offset + i]);
  }
  const mid = (lo + hi) / 2;
  const half = (hi - lo) / 2 || 1;
  for (let i = 0; i < w * h; i++) {
    const t = (values[offset + i] - mid) / half; // -1..1
    const a = Math.round(255 * (1 - Math.abs(t)));
    const [r, g, b] = t >= 0 ? [255, a, a] : [a, a, 255];
    img.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

const PLANE_NAMES = ['c00', 'c01', 'c10', 'c11'];

/** Shows the four ciphertext planes (`planes` = 4·h·w values) in `container`. */
export function showPlanes(container, planes, w, h) {
  container.replaceChildren();
  const n = w * h;
  PLANE_NAMES.forEach((name, k) => {
    const fig = document.createElement('div');
    const c = document.createElement('canvas');
    c.title = `plane ${name}`;
    drawDiverging(c, planes, k * n, w, h);
    const cap = document.createElement('div');
    cap.className = 'plane';
    cap.textContent = name;
    fig.append(c, cap);
    container.append(fig);
  });
}

export function softmax(xs) {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** Probability bars, highest marked. */
export function showBars(container, labels, probs) {
  container.replaceChildren();
  const best = probs.indexOf(Math.max(...probs));
  probs.forEach((p, i) => {
    const label = document.createElement('span');
    label.textContent = labels[i] ?? String(i);
    const track = document.createElement('div');
    track.className = 'track' + (i === best ? ' top' : '');
    const fill = document.createElement('div');
    fill.className = 'fill';
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement('span');
    value.textContent = `${(100 * p).toFixed(1)}%`;
    container.append(label, track, value);
  });
}

const fmt = (ms) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1)) + ' ms';

/** Timing table: rows [[name, ms], ...], then the total. */
export function showTiming(table, rows, total) {
  table.replaceChildren();
  for (const [name, ms] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = name;
    tr.insertCell().textContent = fmt(ms);
  }
  const tr = table.insertRow();
  tr.className = 'total';
  tr.insertCell().textContent = 'total';
  tr.insertCell().textContent = fmt(total);
}

/** A byte count for people: `512 B`, `35.7 KiB`, `7.38 MiB` (the one byte formatter of the pages). */
export function formatBytes(n) {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(2)} MiB`;
}
