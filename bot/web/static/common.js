// Shared by every page: the CSRF token on every POST, a toast, bars.
"use strict";
const csrf = document.querySelector('meta[name="csrf-token"]').content;

async function post(url, body) {
  const options = { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
  if (body instanceof FormData) options.body = body;
  else { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body || {}); }
  const response = await fetch(url, options);
  let data = {};
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error(data.error || `Something went wrong (HTTP ${response.status}).`);
  return data;
}

// A job queued from a page (Vary (Region), Animate): show(job) on each state until it ends.
async function followJob(id, show, rounds) {
  for (let i = 0; i < rounds; i++) {
    await new Promise((r) => setTimeout(r, 1500));
    const response = await fetch(`/api/jobs/${id}`, { credentials: "same-origin" });
    if (!response.ok) return;
    const job = await response.json();
    show(job);
    if (!["queued", "running"].includes(job.state)) return;
  }
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

let toastTimer = null;
function toast(text, kind) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = "toast show" + (kind ? " " + kind : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = "toast"; }, 2600);
}

function fillBars() {
  for (const bar of document.querySelectorAll("[data-fill]")) {
    bar.style.width = `${Math.round(Math.min(1, parseFloat(bar.dataset.fill) || 0) * 100)}%`;
  }
}

// ♥ on any page: like buttons carry data-like="IMAGE_ID".
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-like]");
  if (!button) return;
  event.preventDefault();
  try {
    const data = await post(`/api/like/${button.dataset.like}`);
    button.classList.add("liked");
    const count = button.querySelector(".count");
    if (count) count.textContent = data.likes;
    toast(data.note);
  } catch (error) { toast(error.message, "error"); }
});

fillBars();
