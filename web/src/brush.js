// Brush and eraser strokes on a mask at the image's resolution. A stroke is a polyline of
// image points with a radius in image pixels; a pixel is painted when its centre is within
// the radius of the polyline (so a click alone paints a disc, and a fast drag leaves no
// gaps between mouse events).

// Set (value 1) or clear (0) the pixels within r of segment a-b in a mask (Uint8Array
// H*W, row-major). Returns the changed rectangle [x0, y0, x1, y1) or null when no pixel
// is in range.
export function stampSegment(mask, width, height, a, b, r, value) {
  const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - r));
  const x1 = Math.min(width, Math.ceil(Math.max(a[0], b[0]) + r));
  const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - r));
  const y1 = Math.min(height, Math.ceil(Math.max(a[1], b[1]) + r));
  if (x0 >= x1 || y0 >= y1) return null;
  const dx = b[0] - a[0], dy = b[1] - a[1], length2 = dx * dx + dy * dy, r2 = r * r;
  for (let y = y0; y < y1; y++) {
    const py = y + 0.5 - a[1];
    for (let x = x0; x < x1; x++) {
      const px = x + 0.5 - a[0];
      let t = length2 ? (px * dx + py * dy) / length2 : 0;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      const ex = px - t * dx, ey = py - t * dy;
      if (ex * ex + ey * ey <= r2) mask[y * width + x] = value;
    }
  }
  return [x0, y0, x1, y1];
}

// The union of two rectangles (either may be null).
export function union(p, q) {
  if (!p) return q;
  if (!q) return p;
  return [Math.min(p[0], q[0]), Math.min(p[1], q[1]), Math.max(p[2], q[2]), Math.max(p[3], q[3])];
}

// Paint a whole stroke {points: [[x, y], ...], radius, erase}; the changed rectangle back.
export function applyStroke(mask, width, height, stroke) {
  const { points, radius, erase } = stroke;
  let dirty = null;
  for (let k = 0; k < points.length; k++) {
    const a = points[Math.max(0, k - 1)], b = points[k];
    dirty = union(dirty, stampSegment(mask, width, height, a, b, radius, erase ? 0 : 1));
  }
  return dirty;
}
