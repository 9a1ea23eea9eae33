# One image for every service; docker-compose.yml runs each with the gunicorn command `make run` uses.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
COPY scripts/install-dlib.sh scripts/
# The fast dlib build (clang 16 + OpenBLAS; about 9 minutes the first time); FACEREC_DLIB=bin for dlib-bin.
ARG FACEREC_DLIB=fast
RUN pip install --no-cache-dir -r requirements.txt && FACEREC_DLIB=$FACEREC_DLIB sh scripts/install-dlib.sh python
COPY facerec facerec
COPY models models
COPY detect_service detect_service
COPY store_service store_service
COPY stream_service stream_service
ENV PYTHONUNBUFFERED=1
