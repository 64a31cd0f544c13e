// The "land this bug" page: says what the current choice will do before it is sent, and
// keeps the bug's request list current. Everything from the server is put in the page
// with textContent (never as markup).
'use strict';
(function () {
  const form = document.getElementById('land');
  const plan = document.getElementById('plan');
  const table = document.querySelector('#requests tbody');
  const bug = form ? form.dataset.bug : (location.pathname.split('/')[2] || '');

  function item(list, ok, text) {
    const li = document.createElement('li');
    li.className = ok ? 'ok' : 'no';
    li.textContent = text;
    list.appendChild(li);
  }

  function explain() {
    if (!form || !plan) return;
    const data = JSON.parse(form.dataset.plan || '{}');
    const picked = (name) => Array.from(form.querySelectorAll(`input[name="${name}"]:checked`)).map((i) => i.value);
    const patches = picked('attachment');
    const chosen = picked('destination');
    plan.replaceChildren();
    const head = document.createElement('p');
    const list = document.createElement('ul');
    plan.append(head, list);
    let refused = false;
    if (patches.length === 0) { item(list, false, 'Pick at least one patch.'); refused = true; }
    const tries = chosen.filter((d) => data.repos[d] && data.repos[d].try);
    const finals = chosen.filter((d) => data.repos[d] && !data.repos[d].try);
    const testedOn = new Set(finals.map((d) => data.repos[d].tested_on).filter(Boolean));
    tries.forEach((t) => testedOn.add(t));
    if (chosen.length === 0) { item(list, false, 'Pick where to land: a try repository and/or final destinations.'); refused = true; }
    if (testedOn.size > 1) { item(list, false, `These destinations are tested on different try repositories (${[...testedOn].join(', ')}): split the request.`); refused = true; }
    const tryRepo = [...testedOn][0];
    const route = [tryRepo, ...finals].filter(Boolean);
    head.textContent = patches.length && route.length
      ? `Autoland will apply attachment${patches.length > 1 ? 's' : ''} ${patches.join(', ')} on the tip, push to ${tryRepo}` +
        (finals.length ? `, then land on ${finals.join(' and ')} when try passes.` : ' and report the try results on the bug.')
      : 'Autoland will do nothing with this choice yet.';
    for (const repo of route) {
      const r = data.repos[repo];
      if (!r) continue;
      if (!r.try) {
        const holds = r.viewer_holds === true;
        item(list, holds, `${repo} needs ${r.level}: ${holds ? 'you have it' : 'you do not have it, and the requester of a landing on ' + repo + ' must'}.`);
        if (!holds) refused = true;
      }
      for (const id of patches) {
        const p = data.patches[id];
        const who = p && p.vouch[repo];
        item(list, Boolean(who), who
          ? `${repo} needs ${r.level} for attachment ${id}: ${who} has it.`
          : `${repo} needs ${r.level} for attachment ${id}: neither its author ${p ? p.creator : ''} nor anyone who gave it review+ or feedback+ has it.`);
        if (!who) refused = true;
      }
    }
    const verdict = document.createElement('p');
    verdict.id = 'verdict';
    verdict.className = refused ? 'no' : 'ok';
    verdict.textContent = refused
      ? 'Autoland would refuse this request as it stands (the reasons are marked ✗).'
      : 'Autoland would accept this request.';
    plan.appendChild(verdict);
  }

  // Every 2 s while a request is under way and the page is in view; every 30 s otherwise.
  let busy = true;
  async function refresh() {
    if (!table || !bug) return;
    if (document.hidden && !busy) return;
    try {
      const answer = await fetch(`/api/bugs/${encodeURIComponent(bug)}`, { headers: { Accept: 'application/json' } });
      if (!answer.ok) return;
      const data = await answer.json();
      const rows = data.requests.map((r) => {
        const tr = document.createElement('tr');
        const link = document.createElement('a');
        link.href = `/requests/${Number(r.id)}`;
        link.textContent = String(r.id);
        const cells = [link, r.stage, r.failure || '', r.requester, [r.try_repo, ...r.destinations].join(' → ')];
        cells.forEach((c, i) => {
          const td = document.createElement('td');
          if (c instanceof Node) td.appendChild(c); else td.textContent = c;
          if (i === 1) td.className = `state-${r.stage}`;
          tr.appendChild(td);
        });
        return tr;
      });
      table.replaceChildren(...rows);
      busy = data.requests.some((r) => !['landed', 'failed', 'cancelled'].includes(r.stage));
    } catch (e) {
      // The next refresh tries again.
    }
  }

  if (form) {
    form.addEventListener('change', explain);
    explain();
  }
  let idle = 0;
  async function tick() {
    idle = busy ? 0 : idle + 2;
    if (busy || idle >= 30) {
      idle = 0;
      await refresh();
    }
    setTimeout(tick, 2000);
  }
  refresh().then(() => setTimeout(tick, 2000));
})();
