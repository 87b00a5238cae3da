// The review player: frame-accurate stepping over a <video> of the proxy, the current frame
// shown and copied into the note form, notes that seek to their frame, and a playlist that
// plays its versions in order. The only script of the interface: everything else is HTML
// forms, which work without it.
(function () {
  "use strict";
  var video = document.getElementById("video");
  var shown = document.getElementById("frame-number");
  var noteFrame = document.getElementById("note-frame");
  var single = document.getElementById("player-data");
  var list = document.getElementById("playlist-data");
  var items = list ? JSON.parse(list.textContent) : [single ? JSON.parse(single.textContent) : null];
  var index = 0;
  var clip = items[0];
  if (!clip) return;

  // Frame n (counted from the first) covers [n/fps, (n+1)/fps); seeking to its middle lands on
  // it whatever the decoder's rounding.
  function frameAt(time) { return clip.first_frame + Math.floor(time * clip.fps + 1e-6); }
  function timeOf(frame) { return (frame - clip.first_frame + 0.5) / clip.fps; }
  function lastFrame() {
    var byDuration = video && isFinite(video.duration) ? frameAt(video.duration) - 1 : clip.last_frame;
    return Math.max(clip.first_frame, Math.min(clip.last_frame, byDuration));
  }
  function show() {
    if (!video) return;
    var frame = Math.min(frameAt(video.currentTime), lastFrame());
    shown.textContent = String(frame);
    if (noteFrame && video.paused) noteFrame.value = String(frame);
  }
  function seek(frame) {
    if (!video) return;
    video.pause();
    frame = Math.max(clip.first_frame, Math.min(lastFrame(), frame));
    video.currentTime = timeOf(frame);
  }
  function load(i) {
    index = i;
    clip = items[i];
    var title = document.getElementById("now-playing");
    if (title) title.textContent = clip.title;
    var rows = document.querySelectorAll("[data-index]");
    for (var r = 0; r < rows.length; r++) rows[r].classList.toggle("playing", Number(rows[r].dataset.index) === i);
    if (!video) return;
    // A version without a proxy yet is listed, not played.
    if (!clip.src) { if (i + 1 < items.length) load(i + 1); return; }
    video.src = clip.src;
    video.play().catch(function () {});
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-step],[data-play],[data-seek]");
    if (!target || !video) return;
    if (target.hasAttribute("data-step")) seek(frameAt(video.currentTime) + Number(target.dataset.step));
    else if (target.hasAttribute("data-seek")) seek(Number(target.dataset.seek));
    else if (video.paused) video.play().catch(function () {});
    else video.pause();
  });
  document.addEventListener("keydown", function (event) {
    if (!video || /INPUT|TEXTAREA|SELECT/.test(event.target.tagName)) return;
    if (event.key === "ArrowLeft") { seek(frameAt(video.currentTime) - 1); event.preventDefault(); }
    if (event.key === "ArrowRight") { seek(frameAt(video.currentTime) + 1); event.preventDefault(); }
  });
  if (video) {
    ["timeupdate", "seeked", "pause", "loadedmetadata"].forEach(function (name) { video.addEventListener(name, show); });
    if (video.requestVideoFrameCallback) {
      // While playing, the frame on screen (its presentation time); paused, currentTime is
      // exact, and a late callback must not overwrite it with the frame before a seek.
      var onFrame = function (_now, meta) {
        if (!video.paused) shown.textContent = String(frameAt(meta.mediaTime));
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    }
    if (list) {
      video.addEventListener("ended", function () { if (index + 1 < items.length) load(index + 1); });
      load(0);
    } else {
      var asked = new URLSearchParams(location.search).get("frame");
      if (asked !== null) video.addEventListener("loadedmetadata", function () { seek(Number(asked)); }, { once: true });
    }
  }
})();
