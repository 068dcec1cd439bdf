// Explore: infinite scroll (the "Load more" link fetches the next tiles), copy prompt.
"use strict";
(() => {
  const tiles = document.getElementById("tiles");
  async function loadMore(link) {
    link.remove();
    const response = await fetch(link.href + "&partial=1", { credentials: "same-origin" });
    if (!response.ok) return;
    const fragment = document.createRange().createContextualFragment(await response.text());
    tiles.append(fragment);
    watch();
  }
  function watch() {
    const link = document.getElementById("more");
    if (!link || !("IntersectionObserver" in window)) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) { observer.disconnect(); loadMore(link); }
    }, { rootMargin: "600px" });
    observer.observe(link);
    link.addEventListener("click", (event) => { event.preventDefault(); observer.disconnect(); loadMore(link); });
  }
  if (tiles) watch();

  // Delete job (the member's own image page): its images leave Explore, and the likes on them go.
  const remove = document.getElementById("delete-job");
  if (remove) remove.addEventListener("click", async () => {
    if (!confirm("Delete this job? Its images leave Explore, and the likes on them go.")) return;
    try { await post(`/api/jobs/${remove.dataset.job}/delete`); location.assign("/explore"); }
    catch (e) { toast(e.message, "error"); }
  });

  const copy = document.getElementById("copy");
  if (copy) copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(copy.dataset.copy); toast("Prompt copied."); }
    catch (e) { toast("Select the prompt to copy it.", "error"); }
  });
})();
