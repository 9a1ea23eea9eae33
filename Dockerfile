# One image for both services; docker-compose.yml runs each with the gunicorn command `make run` uses.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY facerec facerec
COPY detect_service detect_service
COPY store_service store_service
ENV PYTHONUNBUFFERED=1
