// COCO RLE in the page: the page sends masks with uncompressed counts and reads the
// server's rows, whose counts are compressed strings (see segany/data/rle.py for the format:
// column-major runs starting with zeros; from the third run on, each count is stored as the
// difference to the count two places before it, in 5-bit groups of chr(48 + g)).

// The runs of a mask (Uint8Array H*W, row-major), column by column as COCO reads it.
export function toRle(mask, height, width) {
  const counts = [];
  let current = 0, run = 0;
  for (let x = 0; x < width; x++) {
    for (let i = x; i < height * width; i += width) {
      const v = mask[i] ? 1 : 0;
      if (v !== current) { counts.push(run); run = 0; current = v; }
      run++;
    }
  }
  counts.push(run);
  return { size: [height, width], counts };
}

// Run lengths from a compressed counts string (the inverse of pycocotools' rleToString).
export function decodeCounts(text) {
  const counts = [];
  let value = 0, shift = 0;
  for (let k = 0; k < text.length; k++) {
    const group = text.charCodeAt(k) - 48;
    if (group < 0 || group > 63) throw new Error(`invalid character in an RLE string at ${k}`);
    value |= (group & 0x1f) << shift;
    shift += 5;
    if (group & 0x20) continue;
    if (group & 0x10) value |= -1 << shift; // sign-extend from the last group's top bit
    if (counts.length > 2) value += counts[counts.length - 2];
    counts.push(value);
    value = 0; shift = 0;
  }
  if (shift) throw new Error("an RLE string ends in the middle of a value");
  return counts;
}

// A mask (Uint8Array, row-major) from a COCO RLE with either form of counts: the whole
// H x W image, or with `box` [x0, y0, w, h] only that crop of it (w x h), which is all a
// mask's pixels when the box is its bounding box. Crops keep a large image's committed
// masks small: an object of 300x200 pixels takes 60 kB, not the 12 MB of a 4000x3000 plane.
export function fromRle(rle, box = null) {
  const [height, width] = rle.size;
  const counts = typeof rle.counts === "string" ? decodeCounts(rle.counts) : rle.counts;
  const [x0, y0, w, h] = box || [0, 0, width, height];
  const mask = new Uint8Array(w * h);
  let at = 0; // column-major index
  for (let k = 0; k < counts.length; k++) {
    if (k % 2 === 1) {
      let x = Math.floor(at / height), y = at - x * height;
      for (let n = counts[k]; n > 0; n--) {
        const cx = x - x0, cy = y - y0;
        if (cx >= 0 && cx < w && cy >= 0 && cy < h) mask[cy * w + cx] = 1;
        if (++y === height) { y = 0; x++; }
      }
    }
    at += counts[k];
  }
  if (at !== height * width) throw new Error(`RLE counts add up to ${at}, not ${height}x${width}`);
  return mask;
}
