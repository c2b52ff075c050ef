// Mask layers at the view's resolution. Masks stay at the image's resolution (a 4000x3000
// image has 12-megapixel masks); a layer samples one (or several) into a canvas the size
// of the view, so drawing the view costs the same whatever the image's size, and a brush
// stroke repaints only the view pixels under it.

// An RGBA colour as the little-endian 32-bit word of an ImageData pixel.
export const word = ([r, g, b], a = 255) => ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;

export class MaskLayer {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.resize(1, 1);
  }

  // The view's size in device pixels; the layer is clear afterwards.
  resize(width, height) {
    this.canvas.width = width;
    this.canvas.height = height;
    this.pixels = this.ctx.createImageData(width, height);
    this.words = new Uint32Array(this.pixels.data.buffer);
  }

  clear() {
    this.words.fill(0);
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  // Paint `entries` ([{mask, color, box}]; later ones on top) of a W x H image into the
  // layer: each view pixel takes the mask pixel under its centre. A mask is the whole
  // image, or with `box` [x0, y0, w, h] that crop of it. With `rect` ([x0, y0, x1, y1) in
  // image pixels), only the view pixels over it are repainted.
  draw(entries, W, H, rect = null) {
    const w = this.canvas.width, h = this.canvas.height, sx = W / w, sy = H / h;
    let [vx0, vy0, vx1, vy1] = [0, 0, w, h];
    if (rect) {
      vx0 = Math.max(0, Math.floor(rect[0] / sx) - 1); vy0 = Math.max(0, Math.floor(rect[1] / sy) - 1);
      vx1 = Math.min(w, Math.ceil(rect[2] / sx) + 1); vy1 = Math.min(h, Math.ceil(rect[3] / sy) + 1);
      if (vx0 >= vx1 || vy0 >= vy1) return;
    }
    const columns = new Int32Array(vx1 - vx0);
    for (let x = vx0; x < vx1; x++) columns[x - vx0] = Math.min(W - 1, Math.floor((x + 0.5) * sx));
    for (let y = vy0; y < vy1; y++) this.words.fill(0, y * w + vx0, y * w + vx1);
    for (const { mask, color, box } of entries) {
      const [bx, by, bw, bh] = box || [0, 0, W, H];
      for (let y = vy0; y < vy1; y++) {
        const iy = Math.min(H - 1, Math.floor((y + 0.5) * sy)) - by;
        if (iy < 0 || iy >= bh) continue;
        const row = iy * bw, out = y * w;
        for (let x = vx0; x < vx1; x++) {
          const ix = columns[x - vx0] - bx;
          if (ix >= 0 && ix < bw && mask[row + ix]) this.words[out + x] = color;
        }
      }
    }
    this.ctx.putImageData(this.pixels, 0, 0, vx0, vy0, vx1 - vx0, vy1 - vy0);
  }
}
