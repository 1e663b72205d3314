// Reading GS1 DataMatrix codes in the page with zxing-wasm (ZXing-C++ as WebAssembly, vendored): from
// the device camera (getUserMedia) or an image file. Loaded on first use, so the console's first load
// does not pay for it. The text comes back in GS1's bracketed form "(01)…(17)…(10)…(21)…", which the
// node's verification parses like the raw element string.

let reader = null;

async function zxing() {
  if (!reader) {
    reader = await import('../vendor/zxing-wasm/es/reader/index.js');
    const wasm = new URL('../vendor/zxing-wasm/reader/zxing_reader.wasm', import.meta.url).href;
    reader.prepareZXingModule({ overrides: { locateFile: (path, prefix) => (path.endsWith('.wasm') ? wasm : prefix + path) }, fireImmediately: true });
  }
  return reader;
}

const OPTIONS = { formats: ['DataMatrix', 'QRCode'], tryHarder: true, maxNumberOfSymbols: 1, textMode: 'HRI' };

/** The text of the first code in an image (Blob or ImageData), or null. */
export async function readImage(image) {
  const z = await zxing();
  const found = await z.readBarcodes(image, OPTIONS);
  const hit = found.find((r) => r.isValid && r.text);
  return hit ? hit.text : null;
}

/** Scan from the camera into `video`; resolves with the first code's text. `stop()` ends it. */
export function scanCamera(video, onState = () => {}) {
  let stream = null;
  let stopped = false;
  let timer = null;
  const canvas = document.createElement('canvas');
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    if (stream) for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  };
  const result = (async () => {
    await zxing();
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
    video.srcObject = stream;
    await video.play();
    onState('scanning');
    while (!stopped) {
      if (video.videoWidth) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        const ctx = canvas.getContext('2d', { willReadFrequently: true });
        ctx.drawImage(video, 0, 0);
        const text = await readImage(ctx.getImageData(0, 0, canvas.width, canvas.height));
        if (text) {
          stop();
          return text;
        }
      }
      await new Promise((resolve) => { timer = setTimeout(resolve, 200); });
    }
    return null;
  })();
  result.catch(() => stop());
  return { result, stop };
}
