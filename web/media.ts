// Display hints for a file about to be sent: width, height, duration, and a
// small JPEG thumbnail (base64, under the protocol's 8 KiB) drawn on a canvas.
// Best effort: a file the browser cannot decode is sent without hints.

export interface MediaHints {
  width?: number;
  height?: number;
  durationMs?: number;
  thumb?: string;
}

const THUMB_MAX_BYTES = 8 * 1024;

export async function hintsFor(file: File): Promise<MediaHints> {
  try {
    if (file.type.startsWith("image/")) {
      const bitmap = await createImageBitmap(file);
      const hints = { width: bitmap.width, height: bitmap.height, ...thumb(bitmap, bitmap.width, bitmap.height) };
      bitmap.close();
      return hints;
    }
    if (file.type.startsWith("video/")) return await videoHints(file);
  } catch {
    // undecodable: no hints
  }
  return {};
}

function thumb(source: CanvasImageSource, w: number, h: number): { thumb?: string } {
  for (const size of [48, 32, 20]) {
    const scale = size / Math.max(w, h);
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(w * scale));
    canvas.height = Math.max(1, Math.round(h * scale));
    canvas.getContext("2d")?.drawImage(source, 0, 0, canvas.width, canvas.height);
    const b64 = canvas.toDataURL("image/jpeg", 0.6).split(",")[1] ?? "";
    if (b64.length * 0.75 <= THUMB_MAX_BYTES) return { thumb: b64 };
  }
  return {};
}

function videoHints(file: File): Promise<MediaHints> {
  return new Promise((resolve) => {
    const url = URL.createObjectURL(file);
    const video = document.createElement("video");
    video.muted = true;
    video.preload = "metadata";
    const done = (h: MediaHints) => {
      URL.revokeObjectURL(url);
      resolve(h);
    };
    video.onloadeddata = () => {
      // A recorded WebM reports Infinity until played through, an audio-only file 0 x 0: left out then.
      const base: MediaHints = {
        ...(video.videoWidth > 0 && video.videoHeight > 0 ? { width: video.videoWidth, height: video.videoHeight } : {}),
        ...(Number.isFinite(video.duration) ? { durationMs: Math.round(video.duration * 1000) } : {}),
      };
      done({ ...base, ...thumb(video, video.videoWidth, video.videoHeight) });
    };
    video.onerror = () => done({});
    setTimeout(() => done({}), 3000);
    video.src = url;
  });
}
