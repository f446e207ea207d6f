// A drawing pad for one digit: white ink on black, mouse / touch / pen through Pointer Events, undo and
// clear. Strokes are kept as point lists, so nothing drawn is lost when something downstream fails.

export class DrawingPad {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{ lineWidth?: number, onStrokeEnd?: () => void, onChange?: () => void }} options
   */
  constructor(canvas, { lineWidth = 20, onStrokeEnd = () => {}, onChange = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { willReadFrequently: true });
    this.lineWidth = lineWidth;
    this.onStrokeEnd = onStrokeEnd;
    this.onChange = onChange;
    this.strokes = [];
    this.current = null;
    this.lastStrokeEnd = 0;
    canvas.addEventListener('pointerdown', (e) => this.#down(e));
    canvas.addEventListener('pointermove', (e) => this.#move(e));
    canvas.addEventListener('pointerup', (e) => this.#up(e));
    canvas.addEventListener('pointercancel', (e) => this.#up(e));
    this.redraw();
  }

  #point(e) {
    const r = this.canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * this.canvas.width) / r.width, ((e.clientY - r.top) * this.canvas.height) / r.height];
  }

  #down(e) {
    if (e.button !== undefined && e.button > 0) return;
    e.preventDefault();
    try {
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      /* not an active pointer (synthetic event): drawing works without capture */
    }
    this.current = { id: e.pointerId, points: [this.#point(e)] };
    this.strokes.push(this.current.points);
    this.redraw();
  }

  #move(e) {
    if (!this.current || e.pointerId !== this.current.id) return;
    e.preventDefault();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) this.current.points.push(this.#point(ev));
    this.redraw();
  }

  #up(e) {
    if (!this.current || e.pointerId !== this.current.id) return;
    this.current = null;
    this.lastStrokeEnd = performance.now();
    this.onChange();
    this.onStrokeEnd();
  }

  /** True if nothing is drawn. */
  get empty() {
    return this.strokes.length === 0;
  }

  undo() {
    this.strokes.pop();
    this.redraw();
    this.onChange();
  }

  clear() {
    this.strokes = [];
    this.redraw();
    this.onChange();
  }

  redraw() {
    const { ctx, canvas } = this;
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = '#fff';
    ctx.fillStyle = '#fff';
    ctx.lineWidth = this.lineWidth;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    for (const pts of this.strokes) {
      if (pts.length === 1) {
        ctx.beginPath();
        ctx.arc(pts[0][0], pts[0][1], this.lineWidth / 2, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      ctx.moveTo(pts[0][0], pts[0][1]);
      for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
      ctx.stroke();
    }
  }

  /** The canvas pixels, RGBA. */
  imageData() {
    return this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height);
  }
}
