# cmake -DGENERATED=build/openapi/openapi.json -DCOMMITTED=docs/openapi.json -P check_openapi.cmake
#
# Fails when the checked-in OpenAPI document is not, byte for byte, the one the build made from
# drgate.proto (proto/CMakeLists.txt), and says how to refresh it.
if(NOT EXISTS "${GENERATED}")
  message(FATAL_ERROR "${GENERATED} is missing: build first (cmake --build build)")
endif()
if(NOT EXISTS "${COMMITTED}")
  message(FATAL_ERROR "${COMMITTED} is missing. Refresh it with:\n  cp ${GENERATED} ${COMMITTED}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${GENERATED}" "${COMMITTED}"
                RESULT_VARIABLE differ)
if(NOT differ EQUAL 0)
  message(FATAL_ERROR
          "${COMMITTED} is not the OpenAPI document the build made from proto/drgate/v1/drgate.proto "
          "(${GENERATED}): the proto's routes, comments or the version changed. Refresh it with:\n"
          "  cp ${GENERATED} ${COMMITTED}\n"
          "and commit it with the change.")
endif()
message(STATUS "${COMMITTED} is the document the build made")
