"""nbgrader's student side in the student image: the course and the exchange the instructor releases to."""

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "ml4physics"
# Mount the course's exchange here (writable: nbgrader refuses an exchange it cannot write to).
c.Exchange.root = "/srv/nbgrader/exchange"
