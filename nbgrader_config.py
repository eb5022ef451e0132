"""nbgrader's configuration for this course: run `nbgrader ...` from this folder, venv activated.

    nbgrader generate_assignment 01_bpe --force   # solutions/01_bpe -> exercises/01_bpe

solutions/ is nbgrader's source folder (the instructor notebooks, with answers) and exercises/
its release folder (what learners get: answers replaced by `raise NotImplementedError()`,
outputs cleared). Submissions go to submitted/<student>/<assignment>/ and `nbgrader autograde`
writes autograded/; those folders and the gradebook are not committed (.gitignore).
"""

import os

c = get_config()  # noqa: F821 - nbgrader provides get_config when it reads this file

c.CourseDirectory.course_id = "llm-from-scratch"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
# Feedback pages show each learner's outputs: nbconvert's sanitiser drops their scripts (a
# learner's <script> would otherwise run in the browser of whoever opens the page).
c.HTMLExporter.sanitize_html = True
