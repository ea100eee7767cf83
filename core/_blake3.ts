/**
 * BLAKE3 (256-bit digest, hash mode) in portable JavaScript, after the reference implementation
 * (github.com/BLAKE3-team/BLAKE3, reference_impl). Artifacts are addressed by BLAKE3 where the
 * host has a native one (several times faster than SHA-256 on one core); this copy lets every
 * runtime verify such blobs, at a few hundred MB/s, when it has none.
 */
import type { Bytes, Hasher } from "./types.ts";

const IV = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
const CHUNK_START = 1;
const CHUNK_END = 2;
const PARENT = 4;
const ROOT = 8;
const BLOCK = 64;
const CHUNK = 1024;

/** The compression function; leaves the 16 output words in `out` (the first 8 are the chaining value). Unrolled, on locals: V8 keeps them in registers. */
function compress(cv: Uint32Array, m: Uint32Array, counter: number, blockLen: number, flags: number, out: Uint32Array) {
  let s0 = cv[0]! | 0;
  let s1 = cv[1]! | 0;
  let s2 = cv[2]! | 0;
  let s3 = cv[3]! | 0;
  let s4 = cv[4]! | 0;
  let s5 = cv[5]! | 0;
  let s6 = cv[6]! | 0;
  let s7 = cv[7]! | 0;
  let s8 = 0x6a09e667 | 0;
  let s9 = 0xbb67ae85 | 0;
  let s10 = 0x3c6ef372 | 0;
  let s11 = 0xa54ff53a | 0;
  let s12 = counter | 0;
  let s13 = Math.floor(counter / 0x100000000) | 0;
  let s14 = blockLen | 0;
  let s15 = flags | 0;
  let m0 = m[0]! | 0;
  let m1 = m[1]! | 0;
  let m2 = m[2]! | 0;
  let m3 = m[3]! | 0;
  let m4 = m[4]! | 0;
  let m5 = m[5]! | 0;
  let m6 = m[6]! | 0;
  let m7 = m[7]! | 0;
  let m8 = m[8]! | 0;
  let m9 = m[9]! | 0;
  let m10 = m[10]! | 0;
  let m11 = m[11]! | 0;
  let m12 = m[12]! | 0;
  let m13 = m[13]! | 0;
  let m14 = m[14]! | 0;
  let m15 = m[15]! | 0;
  let t = 0;
  for (let r = 0; r < 7; r++) {
    s0 = (s0 + s4 + m0) | 0;
    t = s12 ^ s0;
    s12 = (t >>> 16) | (t << 16);
    s8 = (s8 + s12) | 0;
    t = s4 ^ s8;
    s4 = (t >>> 12) | (t << 20);
    s0 = (s0 + s4 + m1) | 0;
    t = s12 ^ s0;
    s12 = (t >>> 8) | (t << 24);
    s8 = (s8 + s12) | 0;
    t = s4 ^ s8;
    s4 = (t >>> 7) | (t << 25);
    s1 = (s1 + s5 + m2) | 0;
    t = s13 ^ s1;
    s13 = (t >>> 16) | (t << 16);
    s9 = (s9 + s13) | 0;
    t = s5 ^ s9;
    s5 = (t >>> 12) | (t << 20);
    s1 = (s1 + s5 + m3) | 0;
    t = s13 ^ s1;
    s13 = (t >>> 8) | (t << 24);
    s9 = (s9 + s13) | 0;
    t = s5 ^ s9;
    s5 = (t >>> 7) | (t << 25);
    s2 = (s2 + s6 + m4) | 0;
    t = s14 ^ s2;
    s14 = (t >>> 16) | (t << 16);
    s10 = (s10 + s14) | 0;
    t = s6 ^ s10;
    s6 = (t >>> 12) | (t << 20);
    s2 = (s2 + s6 + m5) | 0;
    t = s14 ^ s2;
    s14 = (t >>> 8) | (t << 24);
    s10 = (s10 + s14) | 0;
    t = s6 ^ s10;
    s6 = (t >>> 7) | (t << 25);
    s3 = (s3 + s7 + m6) | 0;
    t = s15 ^ s3;
    s15 = (t >>> 16) | (t << 16);
    s11 = (s11 + s15) | 0;
    t = s7 ^ s11;
    s7 = (t >>> 12) | (t << 20);
    s3 = (s3 + s7 + m7) | 0;
    t = s15 ^ s3;
    s15 = (t >>> 8) | (t << 24);
    s11 = (s11 + s15) | 0;
    t = s7 ^ s11;
    s7 = (t >>> 7) | (t << 25);
    s0 = (s0 + s5 + m8) | 0;
    t = s15 ^ s0;
    s15 = (t >>> 16) | (t << 16);
    s10 = (s10 + s15) | 0;
    t = s5 ^ s10;
    s5 = (t >>> 12) | (t << 20);
    s0 = (s0 + s5 + m9) | 0;
    t = s15 ^ s0;
    s15 = (t >>> 8) | (t << 24);
    s10 = (s10 + s15) | 0;
    t = s5 ^ s10;
    s5 = (t >>> 7) | (t << 25);
    s1 = (s1 + s6 + m10) | 0;
    t = s12 ^ s1;
    s12 = (t >>> 16) | (t << 16);
    s11 = (s11 + s12) | 0;
    t = s6 ^ s11;
    s6 = (t >>> 12) | (t << 20);
    s1 = (s1 + s6 + m11) | 0;
    t = s12 ^ s1;
    s12 = (t >>> 8) | (t << 24);
    s11 = (s11 + s12) | 0;
    t = s6 ^ s11;
    s6 = (t >>> 7) | (t << 25);
    s2 = (s2 + s7 + m12) | 0;
    t = s13 ^ s2;
    s13 = (t >>> 16) | (t << 16);
    s8 = (s8 + s13) | 0;
    t = s7 ^ s8;
    s7 = (t >>> 12) | (t << 20);
    s2 = (s2 + s7 + m13) | 0;
    t = s13 ^ s2;
    s13 = (t >>> 8) | (t << 24);
    s8 = (s8 + s13) | 0;
    t = s7 ^ s8;
    s7 = (t >>> 7) | (t << 25);
    s3 = (s3 + s4 + m14) | 0;
    t = s14 ^ s3;
    s14 = (t >>> 16) | (t << 16);
    s9 = (s9 + s14) | 0;
    t = s4 ^ s9;
    s4 = (t >>> 12) | (t << 20);
    s3 = (s3 + s4 + m15) | 0;
    t = s14 ^ s3;
    s14 = (t >>> 8) | (t << 24);
    s9 = (s9 + s14) | 0;
    t = s4 ^ s9;
    s4 = (t >>> 7) | (t << 25);
    // The message permutation, between rounds.
    const p0 = m0, p1 = m1, p2 = m2, p3 = m3, p4 = m4, p5 = m5, p6 = m6, p7 = m7, p8 = m8, p9 = m9, p10 = m10, p11 = m11, p12 = m12, p13 = m13, p14 = m14, p15 = m15;
    m0 = p2;
    m1 = p6;
    m2 = p3;
    m3 = p10;
    m4 = p7;
    m5 = p0;
    m6 = p4;
    m7 = p13;
    m8 = p1;
    m9 = p11;
    m10 = p12;
    m11 = p5;
    m12 = p9;
    m13 = p14;
    m14 = p15;
    m15 = p8;
  }
  out[0] = s0 ^ s8;
  out[1] = s1 ^ s9;
  out[2] = s2 ^ s10;
  out[3] = s3 ^ s11;
  out[4] = s4 ^ s12;
  out[5] = s5 ^ s13;
  out[6] = s6 ^ s14;
  out[7] = s7 ^ s15;
  out[8] = s8 ^ cv[0]!;
  out[9] = s9 ^ cv[1]!;
  out[10] = s10 ^ cv[2]!;
  out[11] = s11 ^ cv[3]!;
  out[12] = s12 ^ cv[4]!;
  out[13] = s13 ^ cv[5]!;
  out[14] = s14 ^ cv[6]!;
  out[15] = s15 ^ cv[7]!;
}


/** A streaming BLAKE3 hasher (32-byte digest as lowercase hex). */
export function blake3(): Hasher {
  const block = new Uint8Array(BLOCK);
  const words = new Uint32Array(16);
  const out = new Uint32Array(16);
  let cv = new Uint32Array(IV);
  let chunkCounter = 0;
  let blocksCompressed = 0;
  let blockLen = 0;
  const stack: Uint32Array[] = [];

  const loadWords = (src: Uint8Array, at: number) => {
    for (let i = 0; i < 16; i++, at += 4) words[i] = src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16) | (src[at + 3]! << 24);
  };
  const chunkLen = () => blocksCompressed * BLOCK + blockLen;
  const startFlag = () => (blocksCompressed === 0 ? CHUNK_START : 0);
  const compressBlock = (src: Uint8Array, at: number) => {
    loadWords(src, at);
    compress(cv, words, chunkCounter, BLOCK, startFlag(), out);
    cv.set(out.subarray(0, 8));
    blocksCompressed++;
  };
  const parent = (left: Uint32Array, right: Uint32Array, flags: number) => {
    words.set(left, 0);
    words.set(right, 8);
    compress(IV, words, 0, BLOCK, PARENT | flags, out);
    return out;
  };
  const finishChunk = () => {
    // The chunk's last block, then merge completed subtrees (one per trailing zero bit of the count).
    loadWords(block, 0);
    compress(cv, words, chunkCounter, blockLen, startFlag() | CHUNK_END, out);
    let node = out.slice(0, 8);
    let total = chunkCounter + 1;
    while ((total & 1) === 0) {
      node = parent(stack.pop()!, node, 0).slice(0, 8);
      total /= 2;
    }
    stack.push(node);
    chunkCounter++;
    cv = new Uint32Array(IV);
    blocksCompressed = 0;
    blockLen = 0;
    block.fill(0);
  };

  return {
    update(data: Bytes) {
      let at = 0;
      const n = data.byteLength;
      while (at < n) {
        if (chunkLen() === CHUNK) finishChunk();
        if (blockLen === BLOCK) {
          compressBlock(block, 0);
          block.fill(0);
          blockLen = 0;
        }
        // Whole blocks straight from the input, keeping the chunk's last block back (it may be the root's).
        while (blockLen === 0 && n - at > BLOCK && chunkLen() + BLOCK < CHUNK) {
          compressBlock(data, at);
          at += BLOCK;
        }
        const take = Math.min(BLOCK - blockLen, n - at);
        block.set(data.subarray(at, at + take), blockLen);
        blockLen += take;
        at += take;
      }
    },
    digest() {
      loadWords(block, 0);
      let flags = startFlag() | CHUNK_END;
      let inputCv: Uint32Array = cv;
      let counter = chunkCounter;
      let len = blockLen;
      let m = words.slice();
      for (let i = stack.length - 1; i >= 0; i--) {
        compress(inputCv, m, counter, len, flags, out);
        m = new Uint32Array(16);
        m.set(stack[i]!, 0);
        m.set(out.subarray(0, 8), 8);
        inputCv = IV;
        counter = 0;
        len = BLOCK;
        flags = PARENT;
      }
      compress(inputCv, m, counter, len, flags | ROOT, out);
      let hex = "";
      for (let i = 0; i < 8; i++) {
        const w = out[i]!;
        for (let b = 0; b < 4; b++) hex += ((w >>> (8 * b)) & 0xff).toString(16).padStart(2, "0");
      }
      return hex;
    },
  };
}
