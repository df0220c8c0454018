/**
 * mlphys-deadlines: each student's own deadline beside the assignment in nbgrader's Assignments panel.
 *
 * nbgrader's panel (its labextension, not forked) renders a row per assignment with the assignment id
 * (`.item_name`) and the course id (`.item_course`), never a due date. When rows appear, this plugin asks the
 * student's own server for the student's deadlines (`GET mlphys/deadlines`, the server extension
 * mlphys.course.deadlines_server, which knows the student from the server's user, never from the request) and
 * writes "due ..." into the row's name cell. Rows are rebuilt by nbgrader on every refresh, fetch and submit, so a
 * MutationObserver watches the panel rather than one lookup at start.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The id nbgrader gives its Assignments panel (its widget tracker's name). */
const PANEL_ID = 'nbgrader-assignment-list';
/** An assignment's row; the nested rows are a fetched assignment's notebooks and a submission's times. */
const ROW = '.list_item:not(.nested_list_item)';
export const LABEL_CLASS = 'mlphys-due';
/** Set on a row once it was looked up, so that writing its label does not start another lookup. */
const LOOKED_UP = 'mlphysDueLookedUp';

type Deadlines = { [assignment: string]: string };

function insidePanel(node: Node): boolean {
  const element = node instanceof Element ? node : node.parentElement;
  return element !== null && element.closest('#' + PANEL_ID) !== null;
}

/** The row's assignment and course, from nbgrader's own cells of it (not its nested rows). */
function rowIds(row: Element): { assignment: string; course: string; name: Element } | null {
  const line = Array.from(row.children).find(child => child.querySelector(':scope > .item_course'));
  const name = line?.querySelector(':scope > .item_name');
  const course = line?.querySelector(':scope > .item_course');
  const assignment = name?.firstElementChild?.textContent?.trim() ?? '';
  const courseId = course?.textContent?.trim() ?? '';
  if (!name || !assignment || !courseId) {
    return null;
  }
  return { assignment, course: courseId, name };
}

async function fetchDeadlines(course: string, assignments: string[]): Promise<Deadlines> {
  const settings = ServerConnection.makeSettings();
  const query = URLExt.objectToQueryString({ course_id: course }) +
    assignments.map(a => '&assignment_id=' + encodeURIComponent(a)).join('');
  const url = URLExt.join(settings.baseUrl, 'mlphys', 'deadlines') + query;
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    throw new Error(`mlphys-deadlines: ${response.status} ${response.statusText}`);
  }
  return (await response.json()) as Deadlines;
}

export function addDueLabel(name: Element, deadline: string): void {
  if (name.querySelector('.' + LABEL_CLASS)) {
    return;
  }
  const label = document.createElement('span');
  label.className = LABEL_CLASS;
  label.textContent = `due ${deadline}`; // text, never HTML
  label.title = 'Your own deadline (with your extension, if you have one)';
  label.style.marginLeft = '0.75em';
  label.style.fontSize = '90%';
  label.style.color = 'var(--jp-ui-font-color2)';
  name.appendChild(label);
}

/** Look up every row of the panel not looked up yet, one request per course, and label the ones with a deadline. */
async function decorate(panel: Element): Promise<void> {
  const byCourse = new Map<string, { assignment: string; name: Element }[]>();
  for (const row of Array.from(panel.querySelectorAll<HTMLElement>(ROW))) {
    if (row.dataset[LOOKED_UP]) {
      continue;
    }
    const ids = rowIds(row);
    if (!ids) {
      continue;
    }
    row.dataset[LOOKED_UP] = '1';
    const rows = byCourse.get(ids.course) ?? [];
    rows.push(ids);
    byCourse.set(ids.course, rows);
  }
  for (const [course, rows] of byCourse) {
    let deadlines: Deadlines;
    try {
      deadlines = await fetchDeadlines(course, Array.from(new Set(rows.map(r => r.assignment))));
    } catch (error) {
      console.warn('mlphys-deadlines: no deadlines for course', course, error);
      continue;
    }
    for (const { assignment, name } of rows) {
      const deadline = deadlines[assignment];
      if (typeof deadline === 'string' && deadline) {
        addDueLabel(name, deadline);
      }
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlphys-deadlines:plugin',
  description: "The student's own deadline in nbgrader's Assignments list",
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    let scheduled: number | null = null;
    const schedule = () => {
      if (scheduled !== null) {
        return;
      }
      scheduled = window.setTimeout(() => {
        scheduled = null;
        const panel = document.getElementById(PANEL_ID);
        if (panel) {
          void decorate(panel);
        }
      }, 100);
    };
    const observer = new MutationObserver(mutations => {
      if (mutations.some(m => insidePanel(m.target) || Array.from(m.addedNodes).some(insidePanel))) {
        schedule();
      }
    });
    observer.observe(document.body, { childList: true, subtree: true });
    schedule();
  }
};

export default plugin;
