// Image page, the owner's Vary (Region): paint a mask over the image, send it with the
// prompt, then follow the job until its four images are there.
"use strict";
(() => {
  const tool = document.getElementById("region-tool");
  if (!tool) return;
  const image = document.getElementById("main-image");
  const canvas = document.getElementById("region-canvas");  // what the member sees: translucent paint
  const form = document.getElementById("region-form");
  const brush = document.getElementById("region-brush");
  const cover = document.getElementById("region-cover");
  const problem = document.getElementById("region-problem");
  const status = document.getElementById("region-status");
  const submit = document.getElementById("region-submit");
  const openButton = document.getElementById("region-open");
  const paint = canvas.getContext("2d");
  // The mask itself, at the image's own size: black keeps, white redraws.
  const mask = Object.assign(document.createElement("canvas"), { width: canvas.width, height: canvas.height });
  const ink = mask.getContext("2d");
  let last = null;

  function clear() {
    paint.clearRect(0, 0, canvas.width, canvas.height);
    ink.fillStyle = "#000";
    ink.fillRect(0, 0, mask.width, mask.height);
    cover.textContent = "0% painted";
  }

  // 1. Keep the canvas over the picture as shown (object-fit: contain leaves bands around it).
  function place() {
    const box = image.getBoundingClientRect(), stage = image.parentElement.getBoundingClientRect();
    const scale = Math.min(box.width / canvas.width, box.height / canvas.height);
    const width = canvas.width * scale, height = canvas.height * scale;
    Object.assign(canvas.style, {
      left: `${box.left - stage.left + (box.width - width) / 2}px`, top: `${box.top - stage.top + (box.height - height) / 2}px`,
      width: `${width}px`, height: `${height}px`,
    });
  }

  // 2. Painting: a round brush whose size is in screen pixels, drawn on both canvases.
  function at(event) {
    const rect = canvas.getBoundingClientRect();
    return { x: (event.clientX - rect.left) * canvas.width / rect.width, y: (event.clientY - rect.top) * canvas.height / rect.height,
             r: parseFloat(brush.value) / 2 * canvas.width / rect.width };
  }
  function stroke(from, to) {
    for (const [context, colour] of [[paint, "#ff6c9a"], [ink, "#fff"]]) {
      context.strokeStyle = context.fillStyle = colour;
      context.lineWidth = 2 * to.r;
      context.lineCap = "round";
      context.beginPath();
      context.arc(to.x, to.y, to.r, 0, 2 * Math.PI);
      context.fill();
      if (from) { context.beginPath(); context.moveTo(from.x, from.y); context.lineTo(to.x, to.y); context.stroke(); }
    }
  }
  function painted() {
    const pixels = ink.getImageData(0, 0, mask.width, mask.height).data;
    let white = 0;
    for (let i = 0; i < pixels.length; i += 4) if (pixels[i] >= 128) white++;
    return white / (mask.width * mask.height);
  }
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    last = at(event);
    stroke(null, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = at(event);
    stroke(last, next);
    last = next;
  });
  for (const end of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(end, () => {
      if (!last) return;
      last = null;
      cover.textContent = `${Math.round(painted() * 100)}% painted`;
    });
  }

  function open(show) {
    form.hidden = !show;
    canvas.hidden = !show;
    openButton.hidden = show;
    if (show) { place(); problem.hidden = true; }
  }
  openButton.addEventListener("click", () => open(true));
  document.getElementById("region-cancel").addEventListener("click", () => { clear(); open(false); });
  document.getElementById("region-clear").addEventListener("click", clear);
  new ResizeObserver(place).observe(image);
  window.addEventListener("resize", place);

  // 3. Send the mask as a PNG with the prompt; the answer is the queued job.
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    submit.disabled = true;
    try {
      const png = await new Promise((resolve) => mask.toBlob(resolve, "image/png"));
      const data = new FormData();
      data.append("mask", png, "mask.png");
      data.append("prompt", document.getElementById("region-prompt").value);
      const job = await post(`/api/image/${tool.dataset.image}/vary-region`, data);
      clear();
      open(false);
      show(job);
      followJob(job.id, show, 1200);
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    } finally { submit.disabled = false; }
  });

  // 4. Where the result will be: a line per job, its images once done.
  function show(job) {
    status.hidden = false;
    let line = status.querySelector(`[data-job="${job.id}"]`);
    if (!line) {
      line = Object.assign(document.createElement("div"), { className: "region-job" });
      line.dataset.job = job.id;
      status.prepend(line);
    }
    line.dataset.state = job.state;
    line.replaceChildren();
    const text = document.createElement("p");
    if (job.state === "queued") {
      text.textContent = `Vary (Region) queued${job.position ? ` · position ${job.position}` : ""}. ` +
        "Its four images will show here, among your images in Explore, and on their own pages.";
    } else if (job.state === "running") {
      text.textContent = `Vary (Region) · ${Math.round(job.percent || 0)}%`;
    } else if (job.state === "done") {
      text.textContent = job.images.length ? "Vary (Region) is done: open an image." : "Vary (Region) is done, but the content filter withheld its images.";
      const grid = Object.assign(document.createElement("div"), { className: "region-results" });
      for (const made of job.images) {
        const link = Object.assign(document.createElement("a"), { href: made.href });
        link.append(Object.assign(document.createElement("img"), { src: made.src, alt: "a region variation" }));
        grid.append(link);
      }
      line.append(text, grid);
      return;
    } else {
      text.className = "problem";
      text.textContent = job.error ? `Vary (Region) failed: ${job.error}` : `Vary (Region) was ${job.state}.`;
    }
    line.append(text);
  }

  clear();
})();
