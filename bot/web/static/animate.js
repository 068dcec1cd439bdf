// Image page, the owner's Animate (Low / High motion): queue the video job, follow it, then play its clips.
"use strict";
(() => {
  const tool = document.getElementById("animate-tool");
  if (!tool) return;
  const status = document.getElementById("animate-status");
  const buttons = tool.querySelectorAll("button[data-motion]");

  function show(job) {
    status.hidden = false;
    status.replaceChildren();
    const text = document.createElement("p");
    if (job.state === "queued") text.textContent = `Animate queued${job.position ? ` · position ${job.position}` : ""}.`;
    else if (job.state === "running") text.textContent = `Animate · ${Math.round(job.percent || 0)}%`;
    else if (job.state === "done") {
      text.textContent = job.images.length ? "Animated: open a clip." : "Animated, but the content filter withheld its clips.";
      const grid = Object.assign(document.createElement("div"), { className: "animate-results" });
      for (const clip of job.images) {
        const link = Object.assign(document.createElement("a"), { href: clip.href });
        const video = Object.assign(document.createElement("video"), {
          src: clip.video, poster: clip.src, muted: true, loop: true, autoplay: true, playsInline: true, className: "clip" });
        link.append(video);
        grid.append(link);
      }
      status.append(text, grid);
      return;
    } else {
      text.className = "problem";
      text.textContent = job.error ? `Animate failed: ${job.error}` : `Animate was ${job.state}.`;
    }
    status.append(text);
  }


  for (const button of buttons) {
    button.addEventListener("click", async () => {
      for (const b of buttons) b.disabled = true;
      try {
        const job = await post(`/api/image/${tool.dataset.image}/animate`, { motion: button.dataset.motion });
        show(job);
        followJob(job.id, show, 2400);
      } catch (error) {
        toast(error.message, "error");
      } finally { for (const b of buttons) b.disabled = false; }
    });
  }
})();
