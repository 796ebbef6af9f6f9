// Does a JPEG's marker structure show damage? The GPU path (src/gpu-decode.ts)
// sends such JPEGs to sharp, so that they get the CPU path's per-image
// warnings (or DECODE_STRICT's 400): nvJPEG decodes damaged data without a
// word. libjpeg's warnings on otherwise readable files are about markers
// ("Corrupt JPEG data: premature end of data segment" is a marker where
// entropy-coded data should continue; "N extraneous bytes before marker";
// "premature end of JPEG file" is a missing EOI), so this walks the markers:
// segments up to each SOS, then the entropy-coded data, where only stuffed
// 0xFF00, fill bytes and restart markers in sequence (when DRI set an
// interval) may appear before the next segment or EOI. It reads only marker
// bytes (Buffer.indexOf finds each 0xFF): about 0.1 ms for a 100 KB JPEG.
// Damage that leaves the markers intact (flipped bits inside entropy data)
// passes here, as it mostly does in libjpeg.

/** Markers that may follow a scan in a progressive or multi-scan JPEG: DHT, DQT, DRI, SOS, COM, APPn, DNL. */
function isInterScanSegment(m: number): boolean {
  return m === 0xc4 || m === 0xdb || m === 0xdd || m === 0xda || m === 0xfe || m === 0xdc || (m >= 0xe0 && m <= 0xef);
}

/** True when the marker structure is broken; false for a well-formed file (or one this cannot judge). */
export function jpegLooksDamaged(buf: Uint8Array): boolean {
  return jpegDamage(buf) !== null;
}

const hex = (n: number) => '0xff' + n.toString(16).padStart(2, '0');

/** What is broken in the marker structure, or null. */
export function jpegDamage(buf: Uint8Array): string | null {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  let i = 2;
  let restartInterval = 0;
  // Header segments, then scans.
  for (;;) {
    if (i + 4 > b.length) return 'the file ends inside its headers';
    if (b[i] !== 0xff) return `bytes where a marker belongs at byte ${i}`;
    while (i < b.length && b[i] === 0xff) i++; // fill bytes
    const m = b[i++];
    if (m === 0xd9) return null; // EOI
    if (i + 2 > b.length) return 'the file ends inside its headers';
    const len = b.readUInt16BE(i);
    if (len < 2 || i + len > b.length) return `segment ${hex(m)} at byte ${i - 2} runs past the end of the file`;
    if (m === 0xdd && len >= 4) restartInterval = b.readUInt16BE(i + 2);
    i += len;
    if (m !== 0xda) continue;
    // Entropy-coded data of this scan.
    let nextRst = 0;
    for (;;) {
      const ff = b.indexOf(0xff, i);
      if (ff < 0 || ff + 1 >= b.length) return 'no end-of-image marker (truncated)';
      let j = ff + 1;
      while (j < b.length && b[j] === 0xff) j++;
      const n = b[j];
      if (n === 0x00) {
        i = j + 1;
        continue;
      }
      if (n >= 0xd0 && n <= 0xd7) {
        if (restartInterval === 0 || n - 0xd0 !== nextRst) return `marker ${hex(n)} inside entropy-coded data at byte ${ff}`;
        nextRst = (nextRst + 1) & 7;
        i = j + 1;
        continue;
      }
      if (n === 0xd9) return null; // EOI; libjpeg reads nothing after it
      if (!isInterScanSegment(n)) return `marker ${hex(n)} inside entropy-coded data at byte ${ff}`;
      i = ff;
      break;
    }
  }
}
