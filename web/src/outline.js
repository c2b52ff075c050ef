// Polygon outlines of a binary mask, for the polygon view: the boundary between set and
// unset pixels is followed along the pixel edges (so the unsimplified rings enclose exactly
// the set pixels), then each ring is simplified by Douglas-Peucker. Coordinates are image
// pixels, (0, 0) the top-left corner of the first pixel; y grows downwards.
//
// Rings run clockwise on the screen around objects and anticlockwise around holes, so a
// ring's signed area (ringArea) is positive for an outer boundary and negative for a hole.
// Diagonal neighbours are separate objects (4-connectivity): two pixels that touch only at
// a corner get two rings.

const DX = [1, 0, -1, 0], DY = [0, 1, 0, -1]; // right, down, left, up

// The pixel-edge rings of a mask (Uint8Array H*W, row-major): an array of rings, each an
// array of [x, y] corners (collinear points dropped). Work is one pass over the mask's
// bounding box plus the length of the boundary.
export function traceRings(mask, width, height) {
  // the bounding box of the set pixels: only there (and one past it) can edges be
  let x0 = width, x1 = -1, y0 = height, y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let first = -1, last = -1;
    for (let x = 0; x < width; x++) if (mask[row + x]) { if (first < 0) first = x; last = x; }
    if (first < 0) continue;
    if (y < y0) y0 = y;
    y1 = y;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
  }
  if (y1 < 0) return [];
  const stride = width + 1; // vertices are the (W+1) x (H+1) pixel corners
  const out = new Uint8Array(stride * (height + 1)); // bit d: an edge leaves in direction d
  const starts = [];
  for (let y = y0; y <= y1 + 1; y++) {
    for (let x = x0; x <= x1 + 1; x++) {
      const inside = y <= y1 && x <= x1;
      const here = inside && mask[y * width + x] ? 1 : 0;
      const up = y > y0 && x <= x1 && mask[(y - 1) * width + x] ? 1 : 0;
      const left = x > x0 && y <= y1 && mask[y * width + x - 1] ? 1 : 0;
      if (here !== up) {
        // the top edge of pixel (x, y) runs right; the bottom edge of (x, y - 1) runs left
        if (here) { out[y * stride + x] |= 1; starts.push(y * stride + x); }
        else out[y * stride + x + 1] |= 4;
      }
      if (here !== left) {
        // the left edge of (x, y) runs up; the right edge of (x - 1, y) runs down
        if (here) out[(y + 1) * stride + x] |= 8;
        else out[y * stride + x] |= 2;
      }
    }
  }
  const rings = [];
  for (const start of starts) {
    if (!(out[start] & 1)) continue; // already part of a traced ring
    const ring = [];
    let v = start, came = 3; // as if arriving upwards: the start is a top-left corner
    do {
      const bits = out[v];
      // at a corner shared by two diagonal objects, turn right (hug the current object)
      let d = (came + 1) & 3;
      if (!(bits & (1 << d))) d = came;
      if (!(bits & (1 << d))) d = (came + 3) & 3;
      if (!(bits & (1 << d))) throw new Error("outline: an open boundary"); // cannot happen
      out[v] &= ~(1 << d);
      if (d !== came) ring.push([v % stride, Math.floor(v / stride)]);
      v += DX[d] + DY[d] * stride;
      came = d;
    } while (v !== start);
    rings.push(ring);
  }
  return rings;
}

// The signed area of a ring: positive when it runs clockwise on the screen (an outer ring).
export function ringArea(ring) {
  let sum = 0;
  for (let i = 0, n = ring.length; i < n; i++) {
    const [x0, y0] = ring[i], [x1, y1] = ring[(i + 1) % n];
    sum += x0 * y1 - x1 * y0;
  }
  return sum / 2;
}

// The distance from p to the segment a-b.
function distance(p, a, b) {
  const dx = b[0] - a[0], dy = b[1] - a[1];
  const length2 = dx * dx + dy * dy;
  let t = length2 ? ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2 : 0;
  t = Math.max(0, Math.min(1, t));
  return Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy);
}

// Douglas-Peucker on a closed ring: the points kept stay within `tolerance` of the ring.
// The ring is split at the point farthest from its first point, and each half simplified
// (with an explicit stack: boundaries of large masks have many thousands of points).
export function simplify(ring, tolerance = 1) {
  const n = ring.length;
  if (n < 4 || tolerance <= 0) return ring.slice();
  let far = 0, best = -1;
  for (let i = 1; i < n; i++) {
    const d = Math.hypot(ring[i][0] - ring[0][0], ring[i][1] - ring[0][1]);
    if (d > best) { best = d; far = i; }
  }
  const keep = new Uint8Array(n + 1);
  keep[0] = keep[far] = keep[n] = 1;
  const point = (i) => ring[i % n];
  const stack = [[0, far], [far, n]];
  while (stack.length) {
    const [a, b] = stack.pop();
    let worst = -1, split = -1;
    for (let i = a + 1; i < b; i++) {
      const d = distance(point(i), point(a), point(b));
      if (d > worst) { worst = d; split = i; }
    }
    if (worst > tolerance) { keep[split] = 1; stack.push([a, split], [split, b]); }
  }
  const kept = [];
  for (let i = 0; i < n; i++) if (keep[i]) kept.push(ring[i]);
  return kept;
}

// The outlines the polygon view draws: the traced rings simplified to `tolerance` pixels;
// a ring that simplification would collapse (a speck of a few pixels) is kept as traced.
export function outlines(mask, width, height, tolerance = 1) {
  return traceRings(mask, width, height).map((ring) => {
    const simple = simplify(ring, tolerance);
    return simple.length >= 3 ? simple : ring;
  });
}
