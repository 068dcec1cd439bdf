// Rank: keys 1 and 2 choose, 3 skips. The pair after this one is preloaded while the member
// looks at this one, so a vote shows it at once; the vote's answer brings the one after it.
"use strict";
(() => {
  const root = document.getElementById("rank");
  const pairEl = document.getElementById("pair");
  let progress = JSON.parse(root.dataset.progress);
  let upcoming = JSON.parse(root.dataset.upcoming || "null");
  let loading = upcoming ? preloadPair(upcoming) : Promise.resolve();
  let busy = false;

  function showProgress() {
    const text = document.getElementById("progress-text");
    const fill = document.getElementById("progress-fill");
    if (progress.unlocked) {
      text.innerHTML = "";
      text.append("Unlocked · ", Object.assign(document.createElement("code"), { textContent: progress.code || "" }),
        ` · ${plural(progress.votes, "vote")}`);
      fill.dataset.fill = 1;
      root.classList.add("unlocked");
    } else {
      text.textContent = `${progress.votes} / ${progress.unlock} votes to unlock`;
      fill.dataset.fill = progress.votes / progress.unlock;
    }
    fillBars();
  }

  function preload(url) { const img = new Image(); img.src = url; return img.decode().catch(() => {}); }
  function preloadPair(pair) { return Promise.all([preload(pair.left), preload(pair.right)]); }

  function showPair(pair) {
    document.getElementById("left-img").src = pair.left;
    document.getElementById("right-img").src = pair.right;
    document.getElementById("pair-prompt").textContent = pair.prompt;
    pairEl.dataset.pair = pair.id;
  }

  async function vote(choice) {
    if (!pairEl || busy) return;
    busy = true;
    const pick = document.getElementById(choice);
    if (pick) pick.classList.add("picked");
    const wasUnlocked = progress.unlocked;
    try {
      const data = await post("/api/rank/vote", { pair_id: Number(pairEl.dataset.pair), choice, upcoming: upcoming && upcoming.id });
      const a = data.answered;
      const verdict = a.choice === "skip" ? `skipped ${a.left} vs ${a.right}`
        : `you chose ${a.choice === "left" ? a.left : a.right} over ${a.choice === "left" ? a.right : a.left}`;
      document.getElementById("reveal-text").textContent = `“${a.prompt}” · ${verdict}`;
      document.getElementById("reveal").hidden = false;
      progress = { ...data.progress, code: data.progress.code || progress.code };
      showProgress();
      if (!wasUnlocked && progress.unlocked) {
        const which = progress.profile ? `${progress.profile} is` : "Your profile is";
        toast(`${which} unlocked! Its code is ${progress.code}.`, "success");
      }
      // Show the preloaded pair and preload the new one; without a preloaded pair, show the new one.
      const show = upcoming || data.pair;
      upcoming = upcoming ? data.pair : null;
      if (show) {
        if (show === data.pair) await preloadPair(show); else await loading;
        showPair(show);
        loading = upcoming ? preloadPair(upcoming) : Promise.resolve();
      } else {
        pairEl.hidden = true;
        const problem = document.getElementById("problem");
        problem.textContent = data.problem;
        problem.hidden = false;
      }
      pairEl.dataset.votes = progress.votes;  // tests and the bench wait on this
    } catch (error) {
      toast(error.message, "error");
    } finally {
      for (const el of document.querySelectorAll(".picked")) el.classList.remove("picked");
      busy = false;
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    const choice = { "1": "left", "2": "right", "3": "skip", ArrowLeft: "left", ArrowRight: "right" }[event.key];
    if (choice) { event.preventDefault(); vote(choice); }
  });
  for (const button of document.querySelectorAll("[data-choice]")) {
    button.addEventListener("click", () => vote(button.dataset.choice));
  }
  showProgress();
})();
