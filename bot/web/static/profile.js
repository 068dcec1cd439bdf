// Profile: code visibility toggles and moodboard uploads.
"use strict";
(() => {
  for (const button of document.querySelectorAll("[data-code]")) {
    button.addEventListener("click", async () => {
      const makePublic = button.dataset.public !== "true";
      try {
        await post(`/api/codes/${button.dataset.code}`, { public: makePublic });
        button.dataset.public = String(makePublic);
        button.classList.toggle("on", makePublic);
        button.textContent = makePublic ? "Public" : "Private";
        toast(`${button.dataset.code} is now ${makePublic ? "public" : "private"}.`);
      } catch (error) { toast(error.message, "error"); }
    });
  }

  const form = document.getElementById("moodboard-form");
  const problem = document.getElementById("moodboard-problem");
  const boards = document.getElementById("boards");

  function line(board) {
    const li = document.createElement("li");
    li.dataset.board = board.id;
    li.dataset.state = board.state;
    li.append(`${board.images} image${board.images === 1 ? "" : "s"} · `);
    if (board.code) li.append(Object.assign(document.createElement("code"), { textContent: board.code }));
    else if (board.error) li.append(Object.assign(document.createElement("span"), { className: "problem", textContent: board.error }));
    else li.append(Object.assign(document.createElement("span"), { className: "muted", textContent: "reading your images…" }));
    return li;
  }

  async function follow(id) {
    for (let i = 0; i < 600; i++) {
      const response = await fetch(`/api/moodboards/${id}`, { credentials: "same-origin" });
      if (!response.ok) return;
      const board = await response.json();
      const old = boards.querySelector(`[data-board="${id}"]`);
      const fresh = line(board);
      if (old) old.replaceWith(fresh); else boards.prepend(fresh);
      if (board.code || board.error) { if (board.code) toast(`Moodboard ready: ${board.code}`, "success"); return; }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const data = new FormData(form);
    try {
      const board = await post("/api/moodboards", data);
      boards.prepend(line(board));
      form.reset();
      follow(board.id);
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    }
  });
  for (const li of boards.querySelectorAll("li")) {
    if (!li.querySelector("code") && !li.querySelector(".problem")) follow(li.dataset.board);
  }
})();
