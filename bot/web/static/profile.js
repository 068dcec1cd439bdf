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
  const files = document.getElementById("moodboard-files");
  const drop = document.getElementById("moodboard-drop");
  const chosen = document.getElementById("moodboard-chosen");
  const submit = document.getElementById("moodboard-submit");

  // What was chosen, said back: "2 images: red.png, navy.png"; nothing to send until something is.
  function showChosen() {
    const names = [...files.files].map((f) => f.name);
    chosen.textContent = names.length ? `${plural(names.length, "image")}: ${names.join(", ")}` : "";
    const tooMany = names.length > Number(form.dataset.max);
    problem.textContent = tooMany ? `A moodboard takes at most ${form.dataset.max} images.` : "";
    problem.hidden = !tooMany;
    submit.disabled = names.length === 0 || tooMany;
  }
  files.addEventListener("change", showChosen);
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    files.files = event.dataTransfer.files;
    showChosen();
  });

  function line(board) {
    const li = document.createElement("li");
    li.dataset.board = board.id;
    li.dataset.state = board.state;
    li.append(`${plural(board.images, "image")} · `);
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
      showChosen();
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
