// The 收回 page: files chosen, or files, folders and zips dropped on the box, are uploaded in a few
// requests (field "files"), and each request's verdicts are added to the list as soon as it is answered;
// the counts and the notices are replaced by the latest ones. Every 复制 button copies its notice.
(function () {
  function readEntry(entry, out) {
    if (entry.isFile) {
      return new Promise(function (done) { entry.file(function (f) { out.push(f); done(); }, done); });
    }
    if (!entry.isDirectory) return Promise.resolve();
    var reader = entry.createReader();
    return new Promise(function (done) {
      var all = [];
      (function more() {
        reader.readEntries(function (batch) {
          if (!batch.length) { Promise.all(all.map(function (e) { return readEntry(e, out); })).then(done); return; }
          all = all.concat(Array.prototype.slice.call(batch)); more();
        }, done);
      })();
    });
  }

  function dropped(ev) {
    var items = ev.dataTransfer.items, out = [], waits = [];
    if (items && items.length && items[0].webkitGetAsEntry) {
      for (var k = 0; k < items.length; k++) {
        var e = items[k].webkitGetAsEntry(), f = e ? null : items[k].getAsFile();
        if (e) waits.push(readEntry(e, out));
        else if (f) out.push(f);
      }
      return Promise.all(waits).then(function () { return out; });
    }
    return Promise.resolve(Array.prototype.slice.call(ev.dataTransfer.files));
  }

  // Requests of a few files each (at most five requests unless the limits need more), so verdicts
  // show as they come while the round's folder is checked only a few times.
  function batches(files, maxFiles, maxBytes) {
    var size = Math.min(maxFiles, Math.max(10, Math.ceil(files.length / 5))), out = [], cur = [], bytes = 0;
    files.forEach(function (f) {
      if (cur.length && (cur.length >= size || bytes + f.size > maxBytes)) { out.push(cur); cur = []; bytes = 0; }
      cur.push(f); bytes += f.size;
    });
    if (cur.length) out.push(cur);
    return out;
  }

  function place(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    var list = document.getElementById("verdicts");
    t.content.querySelectorAll("ul.verdicts > li").forEach(function (li) { list.appendChild(li); });
    ["counts", "notices"].forEach(function (id) {
      var fresh = t.content.getElementById(id), old = document.getElementById(id);
      if (fresh && old) old.replaceWith(fresh);
    });
  }

  function refused(text) {
    var li = document.createElement("li");
    li.className = "verdict error";
    li.innerHTML = text;
    document.getElementById("verdicts").appendChild(li);
  }

  async function upload(files) {
    var form = document.getElementById("upload"), progress = document.getElementById("progress");
    var parts = batches(files, +form.dataset.maxFiles, +form.dataset.maxBytes), done = 0;
    document.getElementById("received").hidden = false;
    document.getElementById("verdicts").innerHTML = "";
    for (var k = 0; k < parts.length; k++) {
      progress.textContent = "正在核查……已完成 " + done + " / " + files.length + " 个文件";
      var body = new FormData();
      parts[k].forEach(function (f) { body.append("files", f, f.webkitRelativePath || f.name); });
      try {
        var r = await fetch("/api/upload", {method: "POST", body: body, headers: {"HX-Request": "true"},
                                            credentials: "same-origin"});
        var text = await r.text();
        if (r.ok) place(text); else refused(text);
      } catch (err) {
        refused('<p class="refused">上传失败：与本机程序的连接中断，请确认 xlsx-assess serve 仍在运行后重试。</p>');
      }
      done += parts[k].length;
    }
    progress.textContent = "已核查 " + files.length + " 个文件。";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var drop = document.getElementById("drop"), input = document.getElementById("files");
    if (!drop || !input) return;
    input.addEventListener("change", function () {
      var files = Array.prototype.slice.call(input.files);
      input.value = "";
      if (files.length) upload(files);
    });
    ["dragenter", "dragover"].forEach(function (t) {
      drop.addEventListener(t, function (ev) { ev.preventDefault(); drop.classList.add("over"); });
    });
    drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
    drop.addEventListener("drop", function (ev) {
      ev.preventDefault(); drop.classList.remove("over");
      dropped(ev).then(function (files) { if (files.length) upload(files); });
    });
  });

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button.copy");
    if (!b) return;
    var text = b.closest(".notice").querySelector("pre").innerText;
    var done = function () { b.textContent = "已复制"; setTimeout(function () { b.textContent = "复制"; }, 1500); };
    var byHand = function () {          // older browsers, or a clipboard the browser will not grant
      var t = document.createElement("textarea"); t.value = text; document.body.appendChild(t); t.select();
      var ok = document.execCommand("copy"); document.body.removeChild(t);
      if (ok) done(); else b.textContent = "请手动选中文字复制";
    };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, byHand); return; }
    byHand();
  });
})();
